import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { exponentialRateLimiter, WorkQueue, type Timers } from '@pos-relay/operator'

/** manual clock: timers fire only when the test advances time */
function fakeTimers () {
  let now = 0
  let seq = 0
  const pending = new Map<number, { at: number, fn: () => void }>()
  const timers: Timers = {
    setTimeout: (fn, ms) => { const id = ++seq; pending.set(id, { at: now + ms, fn }); return id },
    clearTimeout: (h) => { pending.delete(h as number) },
    now: () => now
  }
  const advance = (ms: number): void => {
    now += ms
    for (const [id, t] of [...pending].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= now) { pending.delete(id); t.fn() }
    }
  }
  return { timers, advance, pending }
}

describe('exponential rate limiter', () => {
  it('doubles per failure, per key, up to the cap; forget resets', () => {
    const rl = exponentialRateLimiter(100, 1000)
    assert.deepEqual([rl.when('a'), rl.when('a'), rl.when('a'), rl.when('a'), rl.when('a')], [100, 200, 400, 800, 1000])
    assert.equal(rl.when('b'), 100)
    assert.equal(rl.numRequeues('a'), 5)
    rl.forget('a')
    assert.equal(rl.numRequeues('a'), 0)
    assert.equal(rl.when('a'), 100)
  })
  it('never overflows', () => {
    const rl = exponentialRateLimiter(5, 60_000)
    let d = 0
    for (let i = 0; i < 2000; i++) d = rl.when('k')
    assert.equal(d, 60_000)
  })
})

describe('WorkQueue', () => {
  it('de-duplicates keys waiting in the queue', async () => {
    let adds = 0
    const q = new WorkQueue('t', undefined, { add: () => { adds++ } })
    q.add('a'); q.add('b'); q.add('a'); q.add('a')
    assert.equal(q.length, 2)
    assert.equal(adds, 4)
    assert.equal(await q.get(), 'a')
    assert.equal(await q.get(), 'b')
  })

  it('a key being processed is not handed out twice; an add meanwhile re-queues it once on done()', async () => {
    const q = new WorkQueue('t')
    q.add('a')
    const k = await q.get()
    assert.equal(k, 'a')
    q.add('a'); q.add('a')
    assert.equal(q.length, 0, 'not queued while processing')
    let second: string | undefined
    void q.get().then((x) => { second = x })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(second, undefined)
    q.done('a')
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(second, 'a')
    q.done('a')
    assert.equal(q.length, 0)
  })

  it('waiting workers get keys as they are added, in order', async () => {
    const q = new WorkQueue('t')
    const got = Promise.all([q.get(), q.get()])
    q.add('x'); q.add('y')
    assert.deepEqual(await got, ['x', 'y'])
  })

  it('addRateLimited backs off per key exponentially; forget resets it', () => {
    const { timers, advance } = fakeTimers()
    let retries = 0
    const q = new WorkQueue('t', exponentialRateLimiter(100, 10_000), { retry: () => { retries++ } }, timers)
    assert.equal(q.addRateLimited('a'), 100)
    advance(99)
    assert.equal(q.length, 0)
    advance(1)
    assert.equal(q.length, 1)
    assert.equal(q.addRateLimited('b'), 100)
    assert.equal(q.addRateLimited('b'), 200, 'an earlier pending delay wins, the failure still counts')
    assert.equal(q.numRequeues('b'), 2)
    q.forget('b')
    assert.equal(q.numRequeues('b'), 0)
    assert.equal(retries, 3)
  })

  it('addAfter coalesces: the earliest due time wins', () => {
    const { timers, advance, pending } = fakeTimers()
    const q = new WorkQueue('t', undefined, {}, timers)
    q.addAfter('a', 1000)
    q.addAfter('a', 5000)
    assert.equal(pending.size, 1)
    q.addAfter('a', 10)
    assert.equal(pending.size, 1)
    advance(10)
    assert.equal(q.length, 1)
    advance(5000)
    assert.equal(q.length, 1, 'the later timers were cancelled')
  })

  it('reports depth, queue latency and work duration', async () => {
    const { timers, advance } = fakeTimers()
    const depths: number[] = []
    const latency: number[] = []
    const work: number[] = []
    const q = new WorkQueue('t', undefined, { depth: (n) => depths.push(n), queueLatency: (s) => latency.push(s), workDuration: (s) => work.push(s) }, timers)
    q.add('a'); q.add('b')
    advance(2000)
    const k = await q.get()
    advance(500)
    q.done(k!)
    assert.deepEqual(depths, [1, 2, 1])
    assert.deepEqual(latency, [2])
    assert.deepEqual(work, [0.5])
  })

  it('shutDown wakes waiting workers with undefined and ignores later adds', async () => {
    const q = new WorkQueue('t')
    const w = q.get()
    q.addAfter('z', 100_000)
    q.shutDown()
    assert.equal(await w, undefined)
    q.add('a')
    assert.equal(await q.get(), undefined)
    assert.equal(q.delayedCount, 0)
  })
})
