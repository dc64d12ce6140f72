/**
 * The relay's account policy while the usage store (Redis) is away: quotas
 * are checked against the last fleet-wide figure read, not against zero.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DEFAULT_TIERS } from '@pos-relay/accounts'
import { createAccountPolicy, createMemoryReservationCounter } from '@pos-relay/relay'

describe('account policy: quotas during a usage-store outage', () => {
  const tier = { ...DEFAULT_TIERS.free!, monthly_bytes: 1000 }
  const setup = () => {
    let down = false
    let flushed = 900
    let unflushed = 0
    const policy = createAccountPolicy({
      gate: undefined as any, // identify() is not used here
      meter: { add: () => {}, unflushedMonthlyBytes: () => unflushed },
      flushedMonthlyBytes: async () => { if (down) throw new Error('redis: connection refused'); return flushed },
      reservations: createMemoryReservationCounter()
    })
    return { policy, set: (o: { down?: boolean, flushed?: number, unflushed?: number }) => { down = o.down ?? down; flushed = o.flushed ?? flushed; unflushed = o.unflushed ?? unflushed } }
  }

  it('uses the last figure read (plus what this relay metered since), so a used-up account stays used up', async () => {
    const { policy, set } = setup()
    assert.equal(await policy.remainingBytes('acct', tier), 100)
    set({ down: true, unflushed: 40 })
    assert.equal(await policy.remainingBytes('acct', tier), 60, 'not the whole month again')
    set({ down: false, flushed: 1000, unflushed: 0 })
    assert.equal(await policy.remainingBytes('acct', tier), 0)
    set({ down: true })
    assert.equal(await policy.remainingBytes('acct', tier), 0)
  })

  it('an account never read before the outage is let through (fail open, documented)', async () => {
    const { policy, set } = setup()
    set({ down: true })
    assert.equal(await policy.remainingBytes('new-acct', tier), 1000)
  })
})
