import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { createMemoryRevocationBus, createRedisRevocationBus, TICKET_REVOCATION_TTL_SECONDS, type RevocationBus, type RevocationEvent } from '@pos-relay/accounts'
import { startRedis, useRedis, waitFor } from '@pos-relay/testing'
import { Redis } from 'ioredis'

const claim = (account: string, jti: string = randomUUID()) => ({ account, jti })

describe('memory revocation bus', () => {
  it('delivers revocations to every subscriber and answers isRevoked', async () => {
    const bus = createMemoryRevocationBus()
    const a: RevocationEvent[] = []
    const b: RevocationEvent[] = []
    bus.subscribe((e) => a.push(e))
    const unsubscribe = bus.subscribe((e) => b.push(e))
    bus.subscribe(() => {
      throw new Error('a broken handler does not stop the others')
    })
    await bus.publish({ kind: 'account', id: 'acc_1' })
    await bus.publish({ kind: 'ticket', id: 'jti-1' })
    unsubscribe()
    await bus.publish({ kind: 'ticket', id: 'jti-2' })
    assert.deepEqual(a, [{ kind: 'account', id: 'acc_1' }, { kind: 'ticket', id: 'jti-1' }, { kind: 'ticket', id: 'jti-2' }])
    assert.equal(b.length, 2)
    assert.equal(await bus.isRevoked(claim('acc_1')), true)
    assert.equal(await bus.isRevoked(claim('acc_2', 'jti-1')), true)
    assert.equal(await bus.isRevoked(claim('acc_2')), false)
    await bus.reinstateAccount('acc_1')
    assert.equal(await bus.isRevoked(claim('acc_1')), false)
    assert.equal(a.length, 3, 'reinstatement is not delivered to handlers')
    await assert.rejects(bus.publish({ kind: 'peer', id: 'x' } as never), TypeError)
    await assert.rejects(bus.publish({ kind: 'account', id: '' }), TypeError)
  })
})

describe('redis revocation bus', () => {
  const buses: RevocationBus[] = []
  // declared before useRedis: hooks run in declaration order, so the buses close before Redis stops
  after(async () => {
    await Promise.all(buses.map((b) => b.close()))
  })
  const redis = useRedis()
  const open = (keyPrefix: string) => {
    const bus = createRedisRevocationBus({ redisUrl: redis.url, keyPrefix })
    buses.push(bus)
    return bus
  }

  it('reaches a second connection within 5 s, persists records, and reinstates', async () => {
    const prefix = `rev-${randomUUID()}:`
    const discovery = open(prefix)
    const relay = open(prefix)
    const got: RevocationEvent[] = []
    relay.subscribe((e) => got.push(e))
    assert.equal(await relay.isRevoked(claim('acc_1')), false) // also waits for the subscriber to connect
    const probe = new Redis(redis.url)
    await waitFor(async () => (await probe.pubsub('NUMSUB', `${prefix}revocations`))[1] === 1, { timeoutMs: 5000 }).finally(() => probe.disconnect())

    const sent = Date.now()
    await discovery.publish({ kind: 'account', id: 'acc_1' })
    await discovery.publish({ kind: 'ticket', id: 'jti-9' })
    await waitFor(() => got.length === 2, { timeoutMs: 5000, intervalMs: 10, message: 'revocation not delivered within 5 s' })
    assert.ok(Date.now() - sent < 5000)
    assert.deepEqual(got, [{ kind: 'account', id: 'acc_1' }, { kind: 'ticket', id: 'jti-9' }])
    assert.equal(await relay.isRevoked(claim('acc_1')), true)
    assert.equal(await relay.isRevoked(claim('acc_2', 'jti-9')), true)
    assert.equal(await relay.isRevoked(claim('acc_2')), false)

    // a relay that was not listening still refuses (persistent records)
    const late = open(prefix)
    assert.equal(await late.isRevoked(claim('acc_1')), true)
    assert.equal(await late.isRevoked(claim('acc_3', 'jti-9')), true)

    const raw = new Redis(redis.url)
    try {
      assert.deepEqual(await raw.smembers(`${prefix}revoked:accounts`), ['acc_1'])
      const ttl = await raw.ttl(`${prefix}revoked:ticket:jti-9`)
      assert.ok(ttl > 3600 && ttl <= TICKET_REVOCATION_TTL_SECONDS, `ttl ${ttl}`)
    } finally {
      raw.disconnect()
    }

    await discovery.reinstateAccount('acc_1')
    assert.equal(await relay.isRevoked(claim('acc_1')), false)
    assert.equal(await late.isRevoked(claim('acc_1')), false)
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(got.length, 2, 'reinstatement is not a revocation event')
  })

  it('isolates buses by key prefix', async () => {
    const a = open(`iso-a-${randomUUID()}:`)
    const b = open(`iso-b-${randomUUID()}:`)
    const got: RevocationEvent[] = []
    b.subscribe((e) => got.push(e))
    await b.isRevoked(claim('x'))
    await a.publish({ kind: 'account', id: 'acc_iso' })
    await new Promise((r) => setTimeout(r, 200))
    assert.deepEqual(got, [])
    assert.equal(await b.isRevoked(claim('acc_iso')), false)
  })
})

describe('redis revocation bus across a Redis restart', () => {
  it('keeps delivering within 5 s after Redis restarts, delivers what it missed, and falls back to what it saw', async () => {
    const own = await startRedis()
    const prefix = 'restart:'
    const discovery = createRedisRevocationBus({ redisUrl: own.url, keyPrefix: prefix })
    const relay = createRedisRevocationBus({ redisUrl: own.url, keyPrefix: prefix })
    try {
      const got: RevocationEvent[] = []
      relay.subscribe((e) => got.push(e))
      await relay.isRevoked(claim('warmup'))
      await waitFor(async () => {
        await discovery.publish({ kind: 'ticket', id: 'probe-1' })
        return got.some((e) => e.id === 'probe-1')
      }, { timeoutMs: 5000 })

      await discovery.publish({ kind: 'account', id: 'acc_before' })
      await waitFor(() => got.some((e) => e.id === 'acc_before'), { timeoutMs: 5000 })

      await own.kill()
      // Redis down: isRevoked answers quickly from what this relay saw on the channel (fails open for the rest)
      const started = Date.now()
      assert.equal(await relay.isRevoked(claim('acc_before')), true)
      assert.equal(await relay.isRevoked(claim('acc_other')), false)
      assert.ok(Date.now() - started < 3000, `fallback took ${Date.now() - started} ms`)
      await assert.rejects(discovery.publish({ kind: 'account', id: 'acc_x' }))

      await own.restart() // an empty Redis (no persistence in tests)
      await waitFor(async () => {
        try {
          await discovery.publish({ kind: 'account', id: 'acc_after' })
          return true
        } catch {
          return false
        }
      }, { timeoutMs: 10_000, message: 'publisher never reconnected' })
      const published = Date.now()
      // delivered live if the subscriber was already back, or by the resync when it reconnects
      await waitFor(() => got.some((e) => e.id === 'acc_after'), { timeoutMs: 5000, intervalMs: 10, message: 'no delivery within 5 s after restart' })
      assert.ok(Date.now() - published < 5000)
      assert.equal(await relay.isRevoked(claim('acc_after')), true)
      // and live delivery works again
      await discovery.publish({ kind: 'ticket', id: 'jti-after' })
      await waitFor(() => got.some((e) => e.id === 'jti-after'), { timeoutMs: 5000, intervalMs: 10 })
      assert.equal(got.filter((e) => e.id === 'acc_after').length, 1, 'delivered once')
    } finally {
      await relay.close()
      await discovery.close()
      await own.stop()
    }
  })

  it('a subscriber that was cut off while a revocation was published gets it on reconnect', async () => {
    const own = await startRedis()
    const discovery = createRedisRevocationBus({ redisUrl: own.url, keyPrefix: 'missed:' })
    const relay = createRedisRevocationBus({ redisUrl: own.url, keyPrefix: 'missed:' })
    const admin = new Redis(own.url)
    try {
      const got: RevocationEvent[] = []
      relay.subscribe((e) => got.push(e))
      await relay.isRevoked(claim('warmup'))
      await waitFor(async () => (await admin.pubsub('NUMSUB', 'missed:revocations'))[1] === 1, { timeoutMs: 5000 })
      // drop the relay's subscriber connection; publish while it reconnects
      await admin.client('KILL', 'TYPE', 'pubsub')
      await discovery.publish({ kind: 'account', id: 'acc_missed' })
      await waitFor(() => got.some((e) => e.id === 'acc_missed'), { timeoutMs: 5000, intervalMs: 10, message: 'missed revocation not delivered after reconnect' })
    } finally {
      admin.disconnect()
      await relay.close()
      await discovery.close()
      await own.stop()
    }
  })
})
