import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { ApiError, LeaderElector, microTime, type LeaseLock, type LeaseRecord } from '@pos-relay/operator'

/** an in-memory Lease with the API server's optimistic concurrency */
class MemoryLock implements LeaseLock {
  record: LeaseRecord | undefined
  rv = 0
  failing = false
  writes: string[] = []
  async get () {
    if (this.failing) throw new ApiError(503, 'unavailable')
    return this.record == null ? undefined : { record: structuredClone(this.record), resourceVersion: String(this.rv) }
  }

  async create (record: LeaseRecord) {
    if (this.failing) throw new ApiError(503, 'unavailable')
    if (this.record != null) throw new ApiError(409, 'already exists')
    this.record = structuredClone(record); this.rv++; this.writes.push(`create:${record.holderIdentity}`)
  }

  async update (record: LeaseRecord, rv: string) {
    if (this.failing) throw new ApiError(503, 'unavailable')
    if (rv !== String(this.rv)) throw new ApiError(409, 'conflict')
    this.record = structuredClone(record); this.rv++; this.writes.push(`update:${record.holderIdentity}`)
  }

  describe () { return 'test/lease' }
}

function elector (lock: LeaseLock, identity: string, clock: { t: number }, extra: Partial<ConstructorParameters<typeof LeaderElector>[0]> = {}) {
  return new LeaderElector({
    lock,
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    now: () => clock.t,
    onStartedLeading: () => {},
    onStoppedLeading: () => {},
    ...extra
  })
}

describe('leader election (injected clock)', () => {
  it('microTime has exactly six fractional digits', () => {
    assert.equal(microTime(Date.parse('2026-01-01T00:00:00.123Z')), '2026-01-01T00:00:00.123000Z')
  })

  it('rejects timings that cannot work', () => {
    const lock = new MemoryLock()
    assert.throws(() => new LeaderElector({ lock, identity: 'a', leaseDurationMs: 10, renewDeadlineMs: 10, retryPeriodMs: 1, onStartedLeading () {}, onStoppedLeading () {} }))
  })

  it('the first candidate creates the Lease and leads; renewals keep acquireTime and transitions', async () => {
    const lock = new MemoryLock()
    const clock = { t: 1_000_000 }
    const a = elector(lock, 'a', clock)
    assert.equal(await a.tryAcquireOrRenew(), true)
    assert.equal(lock.record!.holderIdentity, 'a')
    assert.equal(lock.record!.leaseDurationSeconds, 15)
    assert.equal(lock.record!.leaseTransitions, 0)
    const acquired = lock.record!.acquireTime
    clock.t += 2000
    assert.equal(await a.tryAcquireOrRenew(), true)
    assert.equal(lock.record!.acquireTime, acquired)
    assert.equal(lock.record!.renewTime, microTime(clock.t))
    assert.equal(lock.record!.leaseTransitions, 0)
  })

  it('a second candidate waits while the leader renews, and takes over leaseDuration after the renewals stop', async () => {
    const lock = new MemoryLock()
    const clock = { t: 0 }
    const a = elector(lock, 'a', clock)
    const b = elector(lock, 'b', clock)
    assert.equal(await a.tryAcquireOrRenew(), true)
    for (let i = 0; i < 10; i++) {
      clock.t += 2000
      assert.equal(await a.tryAcquireOrRenew(), true)
      assert.equal(await b.tryAcquireOrRenew(), false)
    }
    // a stops renewing (crash): b must wait leaseDuration from when *it* last saw the record change
    clock.t += 14_000
    assert.equal(await b.tryAcquireOrRenew(), false)
    clock.t += 1_001
    assert.equal(await b.tryAcquireOrRenew(), true)
    assert.equal(lock.record!.holderIdentity, 'b')
    assert.equal(lock.record!.leaseTransitions, 1)
    // a comes back: it sees b's fresh record and does not take it
    assert.equal(await a.tryAcquireOrRenew(), false)
  })

  it('is immune to clock skew: only the local observation time counts', async () => {
    const lock = new MemoryLock()
    lock.record = { holderIdentity: 'other', leaseDurationSeconds: 15, renewTime: '1970-01-01T00:00:00.000000Z', acquireTime: '1970-01-01T00:00:00.000000Z', leaseTransitions: 4 }
    lock.rv = 7
    const clock = { t: 5_000_000 }
    const b = elector(lock, 'b', clock)
    assert.equal(await b.tryAcquireOrRenew(), false, 'an ancient renewTime does not make the lease expired')
    clock.t += 15_001
    assert.equal(await b.tryAcquireOrRenew(), true)
    assert.equal(lock.record!.leaseTransitions, 5)
  })

  it('two candidates racing for an expired Lease: exactly one wins', async () => {
    const lock = new MemoryLock()
    lock.record = { holderIdentity: '', leaseDurationSeconds: 1 }
    const clock = { t: 0 }
    const [x, y] = await Promise.all([elector(lock, 'x', clock).tryAcquireOrRenew(), elector(lock, 'y', clock).tryAcquireOrRenew()])
    assert.equal(Number(x) + Number(y), 1)
  })

  it('release empties the holder so a candidate takes over at once', async () => {
    const lock = new MemoryLock()
    const clock = { t: 0 }
    const a = elector(lock, 'a', clock)
    const b = elector(lock, 'b', clock)
    await a.tryAcquireOrRenew()
    assert.equal(await b.tryAcquireOrRenew(), false)
    assert.equal(await a.release(), true)
    assert.equal(lock.record!.holderIdentity, '')
    assert.equal(await b.tryAcquireOrRenew(), true, 'no leaseDuration wait after a release')
    assert.equal(await a.release(), false, 'a does not hold it any more')
  })

  it('API errors make an attempt fail without throwing', async () => {
    const lock = new MemoryLock()
    lock.failing = true
    assert.equal(await elector(lock, 'a', { t: 0 }).tryAcquireOrRenew(), false)
  })
})

describe('leader election run loop (real timers, short durations)', () => {
  const timings = { leaseDurationMs: 600, renewDeadlineMs: 400, retryPeriodMs: 100 }

  it('leads, stops work before releasing on shutdown, and a standby takes over within a retry period', async () => {
    const lock = new MemoryLock()
    const events: string[] = []
    const mk = (id: string) => new LeaderElector({
      lock,
      identity: id,
      ...timings,
      onStartedLeading: () => { events.push(`${id}:start`) },
      onStoppedLeading: async () => { events.push(`${id}:stop`); await sleep(20); events.push(`${id}:stopped(${lock.record?.holderIdentity})`) }
    })
    const a = mk('a')
    const b = mk('b')
    const ca = new AbortController()
    const cb = new AbortController()
    const ra = a.run(ca.signal)
    await sleep(50)
    const rb = b.run(cb.signal)
    await sleep(400)
    assert.equal(a.isLeader(), true)
    assert.equal(b.isLeader(), false)
    const t0 = Date.now()
    ca.abort()
    await ra
    assert.deepEqual(events.slice(0, 3), ['a:start', 'a:stop', 'a:stopped(a)'], 'work stops while a still holds the lease')
    assert.equal(lock.record!.holderIdentity, '')
    while (!b.isLeader()) await sleep(10)
    assert.ok(Date.now() - t0 < 400, `failover after release took ${Date.now() - t0} ms`)
    cb.abort()
    await rb
  })

  it('a leader that cannot renew for renewDeadline stops leading and becomes a candidate again', async () => {
    const lock = new MemoryLock()
    const events: string[] = []
    const a = new LeaderElector({ lock, identity: 'a', ...timings, onStartedLeading: () => { events.push('start') }, onStoppedLeading: () => { events.push('stop') } })
    const c = new AbortController()
    const r = a.run(c.signal)
    await sleep(150)
    assert.equal(a.isLeader(), true)
    lock.failing = true
    const t0 = Date.now()
    while (a.isLeader()) await sleep(10)
    const lostAfter = Date.now() - t0
    assert.ok(lostAfter >= 250 && lostAfter < 900, `lost after ${lostAfter} ms`)
    assert.deepEqual(events, ['start', 'stop'])
    lock.failing = false
    while (!a.isLeader()) await sleep(10)
    assert.deepEqual(events, ['start', 'stop', 'start'])
    c.abort()
    await r
  })
})
