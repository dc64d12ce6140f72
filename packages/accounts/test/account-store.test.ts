import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { AccountsUnavailableError, createMemoryAccountStore, createRedisAccountStore } from '@pos-relay/accounts'
import { startRedis, useRedis, waitFor } from '@pos-relay/testing'
import { Redis } from 'ioredis'
import { accountStoreSuite } from './account-store-suite.ts'

accountStoreSuite('memory', (revocations) => createMemoryAccountStore({ revocations }))

describe('redis account store', () => {
  const redis = useRedis()

  accountStoreSuite('redis', (revocations) => createRedisAccountStore({ redisUrl: redis.url, keyPrefix: `acct-${randomUUID()}:`, revocations }))

  it('stores only a SHA-256 of the key, never the key', async () => {
    const prefix = `layout-${randomUUID()}:`
    const store = createRedisAccountStore({ redisUrl: redis.url, keyPrefix: prefix })
    const raw = new Redis(redis.url)
    try {
      const { account, api_key } = await store.create({ name: 'a', tier: 'free' })
      const keys = await raw.keys(`${prefix}*`)
      assert.deepEqual(keys.sort(), [`${prefix}account:${account.id}`, `${prefix}accounts`, `${prefix}accounts:seq`, `${prefix}apikey:${account.key_id}`].sort())
      const hash = await raw.hgetall(`${prefix}account:${account.id}`)
      assert.match(hash.key_hash ?? '', /^[0-9a-f]{64}$/)
      for (const k of keys) {
        const type = await raw.type(k)
        const dump = type === 'hash' ? JSON.stringify(await raw.hgetall(k)) : type === 'zset' ? JSON.stringify(await raw.zrange(k, 0, -1)) : String(await raw.get(k))
        assert.equal(dump.includes(api_key.slice(21)), false, `${k} holds the secret`)
      }
      // rotation removes the old key index
      const rotated = await store.rotateKey(account.id)
      assert.equal(await raw.exists(`${prefix}apikey:${account.key_id}`), 0)
      assert.equal(await raw.get(`${prefix}apikey:${rotated!.account.key_id}`), account.id)
    } finally {
      raw.disconnect()
      await store.close()
    }
  })

  it('works without a revocation bus', async () => {
    const store = createRedisAccountStore({ redisUrl: redis.url, keyPrefix: `nobus-${randomUUID()}:` })
    try {
      const { account, api_key } = await store.create({ name: 'a', tier: 'free' })
      assert.equal((await store.disable(account.id))?.disabled, true)
      assert.equal(await store.authenticate(api_key), undefined)
    } finally {
      await store.close()
    }
  })

  it('fails fast with AccountsUnavailableError while Redis is down and recovers', async () => {
    const own = await startRedis()
    const store = createRedisAccountStore({ redisUrl: own.url })
    try {
      const { api_key } = await store.create({ name: 'a', tier: 'free' })
      await own.kill()
      const started = Date.now()
      await assert.rejects(store.authenticate(api_key), AccountsUnavailableError)
      await assert.rejects(store.list(), AccountsUnavailableError)
      await assert.rejects(store.create({ name: 'b', tier: 'free' }), AccountsUnavailableError)
      assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`)
      await own.restart()
      await waitFor(async () => (await store.list()).length === 0, { timeoutMs: 10_000, message: 'store never reconnected' })
    } finally {
      await store.close()
      await own.stop()
    }
  })
})
