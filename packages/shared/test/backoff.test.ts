import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Backoff, backoffDelay } from '@pos-relay/shared'

describe('backoffDelay', () => {
  const opts = { initialMs: 500, maxMs: 10_000 }

  it('doubles from initialMs and stops at maxMs', () => {
    const middle = (): number => 0.5 // no spread
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, opts, middle)), [500, 1000, 2000, 4000, 8000, 10_000, 10_000])
    assert.equal(backoffDelay(-1, opts, middle), 500, 'a negative attempt is the first')
  })

  it('spreads each delay by ±20 % by default, so clients dropped together do not retry together', () => {
    assert.equal(backoffDelay(1, opts, () => 0), 800)
    assert.equal(backoffDelay(1, opts, () => 1), 1200)
    assert.equal(backoffDelay(1, { ...opts, jitter: 0 }, () => 1), 1000)
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(3, opts)))
    assert.ok(delays.size > 10, `50 draws gave ${delays.size} distinct delays`)
    for (const d of delays) assert.ok(d >= 3200 && d <= 4800, String(d))
  })

  it('Backoff counts attempts and starts over after reset()', () => {
    const b = new Backoff({ ...opts, jitter: 0 })
    assert.deepEqual([b.next(), b.next(), b.next()], [500, 1000, 2000])
    b.reset()
    assert.equal(b.next(), 500)
  })
})
