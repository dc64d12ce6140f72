import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { API_KEY_PATTERN, createMemoryRevocationBus, type AccountStore, type RevocationBus, type RevocationEvent } from '@pos-relay/accounts'

/** The AccountStore contract, run against every implementation. `make` must return an empty store. */
export function accountStoreSuite (name: string, make: (revocations: RevocationBus) => AccountStore | Promise<AccountStore>): void {
  describe(`AccountStore contract: ${name}`, () => {
    let store: AccountStore
    let bus: RevocationBus
    let events: RevocationEvent[]

    beforeEach(async () => {
      bus = createMemoryRevocationBus()
      events = []
      bus.subscribe((e) => events.push(e))
      store = await make(bus)
    })
    afterEach(async () => {
      await store.close()
      await bus.close()
    })

    it('creates an account, showing a pra_ key once and storing only what the contract returns', async () => {
      const before = Date.now()
      const { account, api_key } = await store.create({ name: 'Acme Corp', tier: 'pro' })
      assert.match(api_key, API_KEY_PATTERN)
      assert.match(account.id, /^acc_[0-9a-f]{16}$/)
      assert.equal(account.name, 'Acme Corp')
      assert.equal(account.tier, 'pro')
      assert.equal(account.disabled, false)
      assert.ok(Math.abs(Date.parse(account.created_at) - before) < 2000)
      assert.equal(api_key.slice(4, 20), account.key_id, 'the key id is the public part of the key')
      assert.deepEqual(Object.keys(account).sort(), ['created_at', 'disabled', 'id', 'key_id', 'name', 'tier'])
      assert.deepEqual(await store.get(account.id), account)
      assert.equal(JSON.stringify(await store.list()).includes(api_key), false, 'the key is never returned again')
    })

    it('lists accounts in creation order and gets unknown ids as undefined', async () => {
      const a = (await store.create({ name: 'a', tier: 'free' })).account
      const b = (await store.create({ name: 'b', tier: 'free' })).account
      const c = (await store.create({ name: 'c', tier: 'pro' })).account
      assert.deepEqual((await store.list()).map((x) => x.id), [a.id, b.id, c.id])
      assert.equal(await store.get('acc_0000000000000000'), undefined)
      assert.equal(await store.get('not a valid id!'), undefined)
      assert.notEqual(a.id, b.id)
    })

    it('authenticates the right key and nothing else', async () => {
      const { account, api_key } = await store.create({ name: 'a', tier: 'free' })
      const other = await store.create({ name: 'b', tier: 'free' })
      assert.deepEqual(await store.authenticate(api_key), account)
      assert.equal((await store.authenticate(other.api_key))?.id, other.account.id)
      const last = api_key.at(-1) === 'A' ? 'B' : 'A'
      const wrong = [
        '',
        'pra_',
        api_key.slice(0, -1),
        api_key + 'x',
        api_key.slice(0, -1) + last, // same key id, wrong secret
        `pra_${account.key_id}_${other.api_key.slice(21)}`, // key id of one, secret of the other
        api_key.toUpperCase(),
        ` ${api_key}`,
        'Bearer ' + api_key,
        'x'.repeat(10_000),
      ]
      for (const key of wrong) assert.equal(await store.authenticate(key), undefined, `accepted ${JSON.stringify(key.slice(0, 30))}`)
      for (const junk of [undefined, null, 42, {}, ['x']]) assert.equal(await store.authenticate(junk as unknown as string), undefined)
    })

    it('disable stops authentication and publishes the revocation; enable restores both', async () => {
      const { account, api_key } = await store.create({ name: 'a', tier: 'free' })
      const disabled = await store.disable(account.id)
      assert.equal(disabled?.disabled, true)
      assert.equal((await store.get(account.id))?.disabled, true)
      assert.equal(await store.authenticate(api_key), undefined)
      assert.deepEqual(events, [{ kind: 'account', id: account.id }])
      assert.equal(await bus.isRevoked({ account: account.id, jti: 'j' }), true)

      const enabled = await store.enable(account.id)
      assert.equal(enabled?.disabled, false)
      assert.equal((await store.authenticate(api_key))?.id, account.id)
      assert.equal(await bus.isRevoked({ account: account.id, jti: 'j' }), false)
      assert.equal(events.length, 1, 'enabling is not a revocation')
    })

    it('rotateKey invalidates the old key at once', async () => {
      const { account, api_key: oldKey } = await store.create({ name: 'a', tier: 'free' })
      const rotated = await store.rotateKey(account.id)
      assert.ok(rotated)
      assert.notEqual(rotated.api_key, oldKey)
      assert.notEqual(rotated.account.key_id, account.key_id)
      assert.equal(rotated.account.id, account.id)
      assert.equal(await store.authenticate(oldKey), undefined)
      assert.equal((await store.authenticate(rotated.api_key))?.key_id, rotated.account.key_id)
      const again = await store.rotateKey(account.id)
      assert.equal(await store.authenticate(rotated.api_key), undefined)
      assert.equal((await store.authenticate(again!.api_key))?.id, account.id)
    })

    it('a disabled account with a rotated key still does not authenticate', async () => {
      const { account } = await store.create({ name: 'a', tier: 'free' })
      await store.disable(account.id)
      const rotated = await store.rotateKey(account.id)
      assert.equal(rotated?.account.disabled, true)
      assert.equal(await store.authenticate(rotated!.api_key), undefined)
    })

    it('unknown ids: disable, enable and rotateKey return undefined and publish nothing', async () => {
      for (const id of ['acc_0000000000000000', 'nope', '../etc', '']) {
        assert.equal(await store.disable(id), undefined)
        assert.equal(await store.enable(id), undefined)
        assert.equal(await store.rotateKey(id), undefined)
      }
      assert.deepEqual(events, [])
      assert.deepEqual(await store.list(), [])
    })

    it('rejects bad input without storing anything', async () => {
      for (const input of [{ name: '', tier: 'free' }, { name: 'x'.repeat(129), tier: 'free' }, { name: 'a', tier: '' }, { name: 5, tier: 'free' }, null]) {
        await assert.rejects(store.create(input as never), TypeError)
      }
      assert.deepEqual(await store.list(), [])
    })

    it('returns copies: mutating a result does not change the store', async () => {
      const { account } = await store.create({ name: 'a', tier: 'free' })
      account.disabled = true
      account.tier = 'unlimited'
      const stored = await store.get(account.id)
      assert.equal(stored?.disabled, false)
      assert.equal(stored?.tier, 'free')
    })

    it('disabling again publishes again (idempotent, helps relays that missed the first message)', async () => {
      const { account } = await store.create({ name: 'a', tier: 'free' })
      await store.disable(account.id)
      await store.disable(account.id)
      assert.deepEqual(events, [{ kind: 'account', id: account.id }, { kind: 'account', id: account.id }])
    })
  })
}
