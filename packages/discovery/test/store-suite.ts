import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { NotListedError, RegistrationConflictError, type RelayStore } from '@pos-relay/discovery'
import { waitFor } from '@pos-relay/testing'
import { listedIds, PEER_A, PEER_B, registration, sleep } from './fixtures.ts'

/** The RelayStore contract, run against every implementation. `makeStore` must return an empty store. */
export function storeSuite (name: string, makeStore: () => RelayStore | Promise<RelayStore>): void {
  describe(`RelayStore contract: ${name}`, () => {
    let store: RelayStore

    beforeEach(async () => {
      store = await makeStore()
    })
    afterEach(async () => {
      await store.close()
    })

    it('registers, gets and lists a relay', async () => {
      const before = Date.now()
      const reg = { ...registration('relay-1'), meta: { region: 'eu' } }
      const record = await store.register(reg, 10_000)
      assert.equal(record.id, 'relay-1')
      assert.equal(record.peer_id, PEER_A)
      assert.deepEqual(record.addrs, reg.addrs)
      assert.deepEqual(record.meta, { region: 'eu' })
      assert.equal(record.registered_at, record.updated_at)
      const expiresIn = Date.parse(record.expires_at) - Date.parse(record.updated_at)
      assert.equal(expiresIn, 10_000)
      // Redis uses its own clock; allow a little skew against ours.
      assert.ok(Math.abs(Date.parse(record.registered_at) - before) < 2_000, record.registered_at)

      assert.deepEqual(await store.get('relay-1'), record)
      assert.deepEqual(await store.list(), [record])
      assert.equal(await store.get('relay-2'), undefined)
    })

    it('omits meta when none was given and ignores unknown properties', async () => {
      const reg = { ...registration('plain'), extra: 'x' }
      const record = await store.register(reg, 10_000)
      assert.equal('meta' in record, false)
      assert.equal('extra' in record, false)
      assert.deepEqual(Object.keys((await store.get('plain')) ?? {}).sort(), [
        'addrs',
        'expires_at',
        'id',
        'peer_id',
        'registered_at',
        'updated_at',
      ])
    })

    it('refresh keeps registered_at, replaces the data and extends expiry', async () => {
      const first = await store.register(registration('relay-1'), 10_000)
      await sleep(20)
      const second = await store.register(registration('relay-1', PEER_A, 5000), 20_000)
      assert.equal(second.registered_at, first.registered_at)
      assert.ok(second.updated_at > first.updated_at, `${second.updated_at} > ${first.updated_at}`)
      assert.ok(Date.parse(second.expires_at) - Date.parse(first.expires_at) >= 10_000)
      assert.equal(second.addrs[0], `/ip4/203.0.113.7/tcp/5000/p2p/${PEER_A}`)
      assert.deepEqual(await store.list(), [second])
    })

    it('refuses a live id to another peer id, changing nothing', async () => {
      const first = await store.register(registration('relay-1'), 10_000)
      await assert.rejects(store.register(registration('relay-1', PEER_B, 5000), 20_000), (err: unknown) => {
        assert.ok(err instanceof RegistrationConflictError, String(err))
        assert.equal(err.id, 'relay-1')
        assert.equal(err.ownerPeerId, PEER_A)
        return true
      })
      assert.deepEqual(await store.get('relay-1'), first)
      assert.deepEqual(await store.list(), [first])
    })

    it('lets another peer id take an id once it was deregistered or expired', async () => {
      await store.register(registration('gone'), 10_000)
      await store.deregister('gone')
      assert.equal((await store.register(registration('gone', PEER_B), 10_000)).peer_id, PEER_B)
      await store.register(registration('short'), 200)
      await waitFor(async () => (await store.get('short')) === undefined, { timeoutMs: 3000, message: 'short never expired' })
      assert.equal((await store.register(registration('short', PEER_B), 10_000)).peer_id, PEER_B)
    })

    it('refresh-only refreshes a live entry and never creates one, also after it was deleted or expired', async () => {
      await assert.rejects(store.register(registration('pool-1'), 10_000, undefined, { refreshOnly: true }), NotListedError)
      assert.deepEqual(await store.list(), [])
      const created = await store.register(registration('pool-1'), 10_000)
      await sleep(20)
      const refreshed = await store.register(registration('pool-1', PEER_A, 5000), 20_000, undefined, { refreshOnly: true })
      assert.equal(refreshed.registered_at, created.registered_at)
      assert.equal(refreshed.addrs[0], `/ip4/203.0.113.7/tcp/5000/p2p/${PEER_A}`)
      assert.ok(Date.parse(refreshed.expires_at) > Date.parse(created.expires_at))
      // ownership still holds for refresh-only writers
      await assert.rejects(store.register(registration('pool-1', PEER_B), 10_000, undefined, { refreshOnly: true }), RegistrationConflictError)
      await store.deregister('pool-1')
      await assert.rejects(store.register(registration('pool-1'), 10_000, undefined, { refreshOnly: true }), NotListedError)
      await store.register(registration('pool-2'), 200)
      await waitFor(async () => (await store.get('pool-2')) === undefined, { timeoutMs: 3000, message: 'pool-2 never expired' })
      await assert.rejects(store.register(registration('pool-2'), 10_000, undefined, { refreshOnly: true }), NotListedError)
      assert.deepEqual(await store.list(), [])
    })

    it('deregisters, reporting whether the relay existed', async () => {
      await store.register(registration('relay-1'), 10_000)
      await store.register(registration('relay-2'), 10_000)
      assert.equal(await store.deregister('relay-1'), true)
      assert.equal(await store.deregister('relay-1'), false)
      assert.equal(await store.deregister('never-registered'), false)
      assert.equal(await store.get('relay-1'), undefined)
      assert.deepEqual(await listedIds(store), ['relay-2'])
    })

    it('expires a short-lived record from list() and get() without any sweeper', async () => {
      const registeredAt = Date.now()
      const short = await store.register(registration('short'), 300)
      await store.register(registration('long'), 60_000)
      assert.deepEqual(await listedIds(store), ['long', 'short'])
      await waitFor(async () => (await store.get('short')) === undefined, { timeoutMs: 3000, message: 'short never expired' })
      assert.ok(Date.now() - registeredAt >= 250, 'expired too early')
      assert.deepEqual(await listedIds(store), ['long'])
      // An expired record is gone for good: registering again starts a new lifetime.
      const again = await store.register(registration('short'), 10_000)
      assert.notEqual(again.registered_at, short.registered_at)
      assert.equal(await store.deregister('nothing'), false)
    })

    it('lists records sorted by id', async () => {
      const ids = ['relay-b', 'Relay-Z', 'relay-a', 'relay-a.1', '0relay', 'relay-c']
      for (const id of ids) await store.register(registration(id), 10_000)
      assert.deepEqual(await listedIds(store), [...ids].sort())
    })

    it('lists many records', async () => {
      const ids = Array.from({ length: 200 }, (_, i) => `relay-${String(i).padStart(3, '0')}`)
      await Promise.all(ids.map((id, i) => store.register(registration(id, PEER_A, 1000 + i), 10_000)))
      const listed = await store.list()
      assert.equal(listed.length, 200)
      assert.deepEqual(
        listed.map((r) => r.id),
        ids
      )
      assert.equal(listed[123]?.addrs[0], `/ip4/203.0.113.7/tcp/1123/p2p/${PEER_A}`)
    })

    it('rejects a non-positive TTL', async () => {
      await assert.rejects(store.register(registration('r'), 0), RangeError)
      await assert.rejects(store.register(registration('r'), -5), RangeError)
      assert.deepEqual(await store.list(), [])
    })

    it('answers ping', async () => {
      await store.ping()
    })
  })
}
