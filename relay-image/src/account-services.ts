/** The account services a relay with auth on uses: injected (dev mode) or built from its config. */
import type { Tier, UsageDelta } from '@pos-relay/accounts'
import type { Logger } from '@pos-relay/shared'
import { createRedisReservationCounter, type ReservationCounter } from './account-policy.js'
import type { RevocationsLike, TicketVerifierLike } from './auth.js'
import { ConfigError, type RelayConfig } from './config.js'

/** What the relay needs from @pos-relay/accounts when auth is on. */
export interface RelayAccountServices {
  verifier: TicketVerifierLike
  revocations: RevocationsLike & { close?: () => Promise<void> }
  tiers: Record<string, Tier>
  meter: { add: (account: string, delta: Partial<UsageDelta>) => void, unflushedMonthlyBytes: (account: string) => number, start: () => void, stop: () => Promise<void>, pendingBatches?: () => number }
  /** closed with the relay (the usage sink of a fleet relay); injected services are closed by their owner */
  close?: () => Promise<void>
  flushedMonthlyBytes: (account: string) => Promise<number>
  reservations: ReservationCounter
}

/** Builds the account services of a fleet relay from its config (Redis-backed). */
export async function accountServicesFromConfig (config: RelayConfig, logger: Logger): Promise<RelayAccountServices> {
  const accounts = await import('@pos-relay/accounts')
  const { auth } = config
  if (auth.redis_url == null) throw new ConfigError('auth.redis_url is required when auth is enabled (revocations, metering and quotas are shared through Redis)')
  // keys configured offline replace the discovery's key set unless a URL is named explicitly
  const jwksUrl = auth.ticket_keys_url ?? (auth.ticket_keys == null && config.api_url != null ? accounts.ticketKeysUrl(config.api_url) : undefined)
  if (jwksUrl == null && auth.ticket_keys == null) throw new ConfigError('auth.ticket_keys, auth.ticket_keys_url or api_url is required when auth is enabled (where the ticket keys come from)')
  let verifier: InstanceType<typeof accounts.TicketVerifier>
  try {
    verifier = new accounts.TicketVerifier({ ...(jwksUrl != null ? { jwksUrl } : {}), ...(auth.ticket_keys != null ? { jwks: auth.ticket_keys as { keys: any[] } } : {}) })
  } catch (err: any) {
    throw new ConfigError(`auth.ticket_keys: ${err.message}`)
  }
  const redisUrl = auth.redis_url
  const sink = accounts.createRedisUsageSink({ redisUrl })
  return {
    verifier,
    revocations: accounts.createRedisRevocationBus({ redisUrl }),
    tiers: auth.tiers ?? accounts.DEFAULT_TIERS,
    meter: new accounts.UsageMeter({ sink, relayId: config.id, flushIntervalMs: auth.metering_interval_seconds * 1000, logger }),
    // through the sink's own connection: monthlyBytes({ redisUrl }) would open one per call
    flushedMonthlyBytes: async (account: string) => await sink.monthlyBytes(account),
    reservations: createRedisReservationCounter({ redisUrl, relayId: config.id }),
    close: async () => { await sink.close() }
  }
}
