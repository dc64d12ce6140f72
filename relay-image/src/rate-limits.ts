import { Redis } from 'ioredis'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible'
import { backoffDelay, type Logger } from '@pos-relay/shared'
import type { RelayMetrics } from './metrics.js'

/** What a limit counts; each has its own key space (`<prefix><kind>:<key>`). */
export type LimitKind = 'ip_connection' | 'peer_reservation' | 'peer_circuit' | 'account_circuit'

export interface RateLimitSettings {
  /** Redis shared by every relay of the fleet; without it each relay limits alone */
  redis_url?: string | undefined
  /** new connections per second per source IP (0 = off) */
  ip_connections_per_second: number
  /** reservations per minute per peer, across the fleet (0 = off) */
  peer_reservations_per_minute: number
  /** circuits (CONNECT) per minute per source peer, across the fleet (0 = off) */
  peer_circuits_per_minute: number
  /** circuits per minute per account; applies once accounts exist (0 = off) */
  account_circuits_per_minute: number
}

const WINDOWS: Record<LimitKind, { setting: keyof RateLimitSettings, seconds: number }> = {
  ip_connection: { setting: 'ip_connections_per_second', seconds: 1 },
  peer_reservation: { setting: 'peer_reservations_per_minute', seconds: 60 },
  peer_circuit: { setting: 'peer_circuits_per_minute', seconds: 60 },
  account_circuit: { setting: 'account_circuits_per_minute', seconds: 60 }
}

export interface RelayRateLimiterOptions {
  settings: RateLimitSettings
  metrics: RelayMetrics
  logger: Logger
  /** Redis key prefix (default `pos-relay:rl:`) */
  keyPrefix?: string
}

/**
 * Fixed-window rate limits shared by all relays through Redis
 * (rate-limiter-flexible's atomic Redis scripts), with an in-memory limiter
 * of the same shape as its insurance: while Redis is away each relay keeps
 * limiting alone, at once, and goes back to the shared counts when Redis
 * answers again. Redis errors never refuse or stall a peer.
 */
export class RelayRateLimiter {
  private readonly limiters = new Map<LimitKind, RateLimiterAbstract>()
  private readonly redis?: Redis
  private readonly logger: Logger
  private readonly metrics: RelayMetrics
  private lastRedisState?: boolean
  private readonly prefix: string
  /** the rate each kind was built with (0 = off) */
  private readonly points = new Map<LimitKind, number>()

  constructor (opts: RelayRateLimiterOptions) {
    const { settings, metrics, logger } = opts
    this.logger = logger
    this.metrics = metrics
    if (settings.redis_url != null) {
      this.redis = new Redis(settings.redis_url, {
        // fail fast while disconnected: the insurance limiter answers instead
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: 500,
        retryStrategy: (times) => backoffDelay(times, { initialMs: 100, maxMs: 2000 })
      })
      this.redis.on('error', () => {}) // state changes are logged below, not every retry
      this.redis.on('ready', () => { this.noteRedis(true) })
      this.redis.on('close', () => { this.noteRedis(false) })
    }
    metrics.sources.rateLimitRedisUp = () => this.redis?.status === 'ready'
    this.prefix = opts.keyPrefix ?? 'pos-relay:rl:'
    for (const kind of Object.keys(WINDOWS) as LimitKind[]) this.build(kind, settings[WINDOWS[kind].setting] as number)
  }

  /**
   * New rates for a running relay (limits file). Only the kinds whose rate
   * changed get a new limiter; the shared counts in Redis keep their keys, so
   * a peer's usage of the current window carries over (the local fallback's
   * counts of that kind start afresh).
   */
  update (settings: Pick<RateLimitSettings, 'peer_reservations_per_minute' | 'peer_circuits_per_minute' | 'account_circuits_per_minute'>): void {
    for (const kind of ['peer_reservation', 'peer_circuit', 'account_circuit'] as const) {
      const points = settings[WINDOWS[kind].setting as keyof typeof settings]
      if (points !== this.points.get(kind)) this.build(kind, points)
    }
  }

  private build (kind: LimitKind, points: number): void {
    const seconds = WINDOWS[kind].seconds
    this.points.set(kind, points)
    if (points <= 0) { this.limiters.delete(kind); return }
    const keyPrefix = `${this.prefix}${kind}`
    const local = new RateLimiterMemory({ points, duration: seconds, keyPrefix })
    this.limiters.set(kind, this.redis == null
      ? local
      : new RateLimiterRedis({ storeClient: this.redis, points, duration: seconds, keyPrefix, insuranceLimiter: local, rejectIfRedisNotReady: true }))
  }

  private noteRedis (up: boolean): void {
    if (this.lastRedisState === up) return
    this.lastRedisState = up
    if (up) this.logger.info({ event: 'rate_limits_shared' }, 'rate limits shared through Redis')
    else this.logger.warn({ event: 'rate_limits_local' }, 'Redis unreachable: rate limits enforced by this relay alone until it returns')
  }

  /** Consumes one unit for `key`; false when over the limit. Unconfigured kinds always allow. */
  async allow (kind: LimitKind, key: string): Promise<boolean> {
    const limiter = this.limiters.get(kind)
    if (limiter == null) return true
    if (this.redis != null && this.redis.status !== 'ready') this.metrics.rateLimitFallbackTotal.inc()
    try {
      await limiter.consume(key, 1)
      return true
    } catch (err) {
      if (err instanceof RateLimiterRes) return false
      // neither Redis nor the insurance limiter answered: let the peer through
      this.logger.warn({ event: 'rate_limit_error', kind, err: (err as Error).message }, 'rate limiter failed; allowing')
      return true
    }
  }

  async close (): Promise<void> {
    if (this.redis == null) return
    try { await this.redis.quit() } catch { this.redis.disconnect() }
  }
}

/**
 * Logs at most one line per reason and interval, with the number of
 * occurrences folded into it: a flood must not become a log flood.
 */
export class SampledLog {
  private readonly seen = new Map<string, { count: number, last: number }>()

  constructor (private readonly logger: Logger, private readonly intervalMs = 10_000) {}

  note (reason: string, fields: Record<string, unknown> = {}): void {
    const now = Date.now()
    const entry = this.seen.get(reason) ?? { count: 0, last: 0 }
    entry.count++
    if (now - entry.last >= this.intervalMs) {
      this.logger.warn({ event: 'denied', reason, occurrences: entry.count, ...fields }, `denied: ${reason}`)
      entry.count = 0
      entry.last = now
    }
    this.seen.set(reason, entry)
  }
}
