import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createMemoryStore, createRedisStore, StoreUnavailableError, type RelayStore } from '@pos-relay/discovery'
import { useRedis, waitFor } from '@pos-relay/testing'
import { Redis } from 'ioredis'
import { listedIds, PEER_A, PEER_B, PEER_C, registration, sleep } from './fixtures.ts'
import { storeSuite } from './store-suite.ts'

storeSuite('memory', () => createMemoryStore())

describe('redis store', () => {
  const redis = useRedis()

  // A fresh key prefix per test keeps tests independent on one server.
  storeSuite('redis', () => createRedisStore({ url: redis.url, keyPrefix: `test-${randomUUID()}:` }))

  describe('redis specifics', () => {
    const stores: RelayStore[] = []
    let raw: Redis
    before(() => {
      raw = new Redis(redis.url)
    })
    after(async () => {
      await Promise.all(stores.map((s) => s.close()))
      raw.disconnect()
    })
    const open = (keyPrefix: string) => {
      const s = createRedisStore({ url: redis.url, keyPrefix })
      stores.push(s)
      return s
    }

    it('isolates stores by key prefix', async () => {
      const a = open('iso-a:')
      const b = open('iso-b:')
      await a.register(registration('shared-id'), 10_000)
      assert.deepEqual(await b.list(), [])
      assert.equal(await b.get('shared-id'), undefined)
      assert.equal(await b.deregister('shared-id'), false)
      assert.deepEqual(await listedIds(a), ['shared-id'])
    })

    it('uses one PX key per relay plus an expiry-scored index', async () => {
      const s = open('layout:')
      const record = await s.register(registration('r1'), 10_000)
      const pttl = await raw.pttl('layout:relay:r1')
      assert.ok(pttl > 9_000 && pttl <= 10_000, `pttl ${pttl}`)
      assert.equal(Number(await raw.zscore('layout:relays', 'r1')), Date.parse(record.expires_at))
      await s.deregister('r1')
      assert.equal(await raw.exists('layout:relay:r1'), 0)
      assert.equal(await raw.zcard('layout:relays'), 0)
    })

    it('prunes expired index members on the next register', async () => {
      const s = open('prune:')
      await s.register(registration('gone'), 100)
      await waitFor(async () => (await raw.exists('prune:relay:gone')) === 0, { timeoutMs: 2000 })
      assert.equal(await raw.zcard('prune:relays'), 1) // nothing sweeps by itself...
      await s.register(registration('fresh'), 10_000)
      assert.deepEqual(await raw.zrange('prune:relays', 0, -1), ['fresh']) // ...the next write does
    })

    it('gives a contested id to exactly one peer when writers race (ownership is checked inside the script)', async () => {
      // two stores = two connections, like the HTTP route and the operator writing at once
      const stores = [open('race:'), open('race:'), open('race:')]
      const peers = [PEER_A, PEER_B, PEER_C]
      for (let round = 0; round < 20; round++) {
        const id = `contested-${round}`
        const results = await Promise.allSettled(peers.map((p, i) => stores[i]!.register(registration(id, p), 10_000)))
        const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.peer_id] : []))
        assert.equal(won.length, 1, `round ${round}: ${won.length} writers won`)
        assert.equal((await stores[0]!.get(id))?.peer_id, won[0])
      }
    })

    it('skips index members whose key vanished', async () => {
      const s = open('vanish:')
      await s.register(registration('r1'), 10_000)
      await s.register(registration('r2'), 10_000)
      await raw.del('vanish:relay:r1')
      assert.deepEqual(await listedIds(s), ['r2'])
    })
  })
})

describe('redis store outage', () => {
  let store: RelayStore
  // declared before useRedis: hooks run in declaration order, so the store closes before Redis stops
  after(async () => {
    await store?.close()
  })
  const redis = useRedis()
  before(() => {
    store = createRedisStore({ url: redis.url, keyPrefix: 'outage:' })
  })

  it('fails fast with StoreUnavailableError and recovers after a restart', async () => {
    await store.register(registration('r1'), 60_000)
    await redis.kill()
    await sleep(50)
    for (const op of [() => store.ping(), () => store.list(), () => store.get('r1'), () => store.register(registration('r2'), 1000), () => store.deregister('r1')]) {
      const started = Date.now()
      await assert.rejects(op(), StoreUnavailableError)
      assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`)
    }
    await redis.restart()
    await waitFor(
      async () => {
        await store.ping()
        return true
      },
      { timeoutMs: 10_000, message: 'store did not reconnect' }
    )
    // The server came back empty (no persistence); writes work again.
    assert.deepEqual(await store.list(), [])
    await store.register(registration('r2'), 10_000)
    assert.deepEqual(await listedIds(store), ['r2'])
  })
})

describe('memory store clock', () => {
  it('uses the injected clock for expiry and timestamps', async () => {
    let now = Date.parse('2030-01-01T00:00:00.000Z')
    const store = createMemoryStore({ now: () => now })
    const record = await store.register(registration('r1'), 1000)
    assert.equal(record.registered_at, '2030-01-01T00:00:00.000Z')
    assert.equal(record.expires_at, '2030-01-01T00:00:01.000Z')
    now += 999
    assert.equal((await store.list()).length, 1)
    now += 1
    assert.deepEqual(await store.list(), [])
    assert.equal(await store.get('r1'), undefined)
  })
})
