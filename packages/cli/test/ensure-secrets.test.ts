/**
 * decideKeys, the pure part of `pos-relay keys ensure-secrets`: when a rotation adds a key, when a
 * superseded key is retired, and that nothing goes back. The Kubernetes part (create-if-absent,
 * 409s, the chart's hook) is tested against a real API server in e2e/kube/test/accounts.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateTicketKey, type TicketKey } from '@pos-relay/accounts'
import { decideKeys, kidsHash } from '../src/ensure-secrets.ts'

const HOUR = 3600_000
const t0 = new Date('2030-01-01T00:00:00Z')
const at = (ms: number): Date => new Date(t0.getTime() + ms)

describe('decideKeys', () => {
  it('a higher generation puts a new key first and marks the old one superseded; the same generation changes nothing', async () => {
    const [k1, k2] = [await generateTicketKey(), await generateTicketKey()] as [TicketKey, TicketKey]
    const d = decideKeys([k1], {}, 1, 2, 7200, t0, () => k2)
    assert.deepEqual(d.keys.map((k) => k.kid), [k2.kid, k1.kid])
    assert.deepEqual(d.superseded, { [k1.kid]: t0.toISOString() })
    assert.equal(d.generation, 2)
    assert.equal(d.added, k2.kid)
    const same = decideKeys(d.keys, d.superseded, 2, 2, 7200, at(HOUR), () => { throw new Error('no new key') })
    assert.equal(same.added, undefined)
    assert.deepEqual(same.retired, [])
    assert.deepEqual(same.keys, d.keys)
  })

  it('retires a superseded key only after retireAfterSeconds, never the signing key or one without a mark', async () => {
    const [k1, k2, hand] = [await generateTicketKey(), await generateTicketKey(), await generateTicketKey()] as [TicketKey, TicketKey, TicketKey]
    const marks = { [k1.kid]: t0.toISOString() }
    assert.deepEqual(decideKeys([k2, hand, k1], marks, 2, 2, 7200, at(2 * HOUR - 1), () => k2).retired, [])
    const d = decideKeys([k2, hand, k1], marks, 2, 2, 7200, at(2 * HOUR), () => k2)
    assert.deepEqual(d.retired, [k1.kid])
    assert.deepEqual(d.keys.map((k) => k.kid), [k2.kid, hand.kid])
    assert.deepEqual(d.superseded, {})
    // the signing key is kept even if (wrongly) marked
    assert.deepEqual(decideKeys([k2], { [k2.kid]: t0.toISOString() }, 2, 2, 7200, at(10 * HOUR), () => k2).keys, [k2])
  })

  it('a lower generation than stored changes nothing (never back to an older key set)', async () => {
    const k1 = await generateTicketKey()
    const d = decideKeys([k1], {}, 3, 1, 7200, t0, () => { throw new Error('no new key') })
    assert.deepEqual(d.keys, [k1])
    assert.equal(d.generation, 3)
  })

  it('kidsHash depends on the order (which key signs)', () => {
    assert.match(kidsHash(['a', 'b']), /^[0-9a-f]{16}$/)
    assert.notEqual(kidsHash(['a', 'b']), kidsHash(['b', 'a']))
  })
})
