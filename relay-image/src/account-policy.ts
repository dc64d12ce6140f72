import { Redis } from 'ioredis'
import type { AccountPolicy } from './hop-hooks.js'
import type { TicketGate } from './auth.js'
import type { Tier, UsageDelta } from '@pos-relay/accounts'
import type { PeerId } from '@libp2p/interface'

/** Counts an account's reservations across the fleet (tier.max_reservations). */
export interface ReservationCounter {
  admit: (account: string, member: string, max: number) => Promise<boolean>
  release: (account: string, member: string) => void
  /** keeps this relay's members alive (called every metering tick) */
  refresh: () => Promise<void>
  close: () => Promise<void>
}

/**
 * Fleet-wide reservation counts in Redis: one sorted set per account whose
 * members (`<relay>/<peer>`) are scored by an expiry that each relay pushes
 * forward while it holds them, so a crashed relay's reservations stop
 * counting after `leaseMs` without any sweeper.
 */
export function createRedisReservationCounter (opts: { redisUrl: string, relayId: string, leaseMs?: number, keyPrefix?: string }): ReservationCounter {
  const redis = new Redis(opts.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500 })
  redis.on('error', () => {})
  const lease = opts.leaseMs ?? 90_000
  const prefix = opts.keyPrefix ?? 'pos-relay:'
  const held = new Map<string, Set<string>>()
  const local = createMemoryReservationCounter()
  const ADMIT = `local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1]) return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 2)
return 1`
  const key = (account: string): string => `${prefix}reservations:${account}`
  const memberOf = (m: string): string => `${opts.relayId}/${m}`
  return {
    async admit (account, member, max) {
      try {
        const ok = await redis.eval(ADMIT, 1, key(account), memberOf(member), String(max), String(Date.now()), String(lease)) === 1
        if (ok) held.set(account, (held.get(account) ?? new Set()).add(member))
        return ok
      } catch {
        // Redis away: count this relay's reservations alone
        return await local.admit(account, member, max)
      }
    },
    release (account, member) {
      held.get(account)?.delete(member)
      local.release(account, member)
      redis.zrem(key(account), memberOf(member)).catch(() => {})
    },
    async refresh () {
      const expiry = Date.now() + lease
      await Promise.all([...held].flatMap(([account, members]) => [...members].map(async (m) => await redis.zadd(key(account), expiry, memberOf(m)).catch(() => 0))))
    },
    async close () { redis.disconnect() }
  }
}

export function createMemoryReservationCounter (): ReservationCounter {
  const counts = new Map<string, Set<string>>()
  return {
    async admit (account, member, max) {
      const set = counts.get(account) ?? new Set()
      if (!set.has(member) && set.size >= max) return false
      counts.set(account, set.add(member))
      return true
    },
    release (account, member) { counts.get(account)?.delete(member) },
    async refresh () {},
    async close () {}
  }
}

export interface AccountPolicyDeps {
  gate: TicketGate
  meter: { add: (account: string, delta: Partial<UsageDelta>) => void, unflushedMonthlyBytes: (account: string) => number }
  /** bytes of this month already flushed for the account, fleet-wide */
  flushedMonthlyBytes: (account: string) => Promise<number>
  reservations: ReservationCounter
}

/** accounts whose last fleet-wide monthly figure is remembered (oldest forgotten first) */
const REMEMBERED_ACCOUNTS = 100_000

export function createAccountPolicy (deps: AccountPolicyDeps): AccountPolicy {
  // The last fleet-wide figure read per account, for the month it was read in.
  // While Redis is away the quota is checked against it (plus what this relay
  // metered since), not against zero: that would hand an account that used up
  // its month the whole month again. An account never read before the outage
  // is let through (fail open), as refusing every quota'd account would turn a
  // Redis outage into a relay outage; docs/accounts.md says so.
  const lastFlushed = new Map<string, { month: string, bytes: number }>()
  const month = (): string => new Date().toISOString().slice(0, 7)
  return {
    identify (peer: PeerId) {
      const claims = deps.gate.claimsFor(peer)
      if (claims == null) return undefined
      const tier = deps.gate.tierOf(claims)
      return tier == null ? undefined : { account: claims.account, tier }
    },
    async admitReservation (account: string, peer: PeerId, tier: Tier) {
      return await deps.reservations.admit(account, peer.toString(), tier.max_reservations)
    },
    releaseReservation (account: string, peer: PeerId) { deps.reservations.release(account, peer.toString()) },
    async remainingBytes (account: string, tier: Tier) {
      if (tier.monthly_bytes <= 0) return Infinity
      let flushed: number
      try {
        flushed = await deps.flushedMonthlyBytes(account)
        lastFlushed.delete(account)
        lastFlushed.set(account, { month: month(), bytes: flushed })
        if (lastFlushed.size > REMEMBERED_ACCOUNTS) lastFlushed.delete(lastFlushed.keys().next().value!)
      } catch {
        const last = lastFlushed.get(account)
        flushed = last != null && last.month === month() ? last.bytes : 0
      }
      return tier.monthly_bytes - flushed - deps.meter.unflushedMonthlyBytes(account)
    },
    meter (account: string, delta: Partial<UsageDelta>) { deps.meter.add(account, delta) }
  }
}
