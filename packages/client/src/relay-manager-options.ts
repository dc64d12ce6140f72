/**
 * What a RelayManager is given and reports, and the timings it keeps (docs/protocol.md
 * sections 4 and 6): public types and constants, apart from the manager's logic.
 */
import type { PeerId } from '@libp2p/interface'
import type { AddressPolicy } from '@pos-relay/shared'
import type { RelayInfo } from './discovery.js'

export interface RelayManagerOptions {
  /** base URL of the discovery API, e.g. http://127.0.0.1:8080 */
  discoveryUrl: string
  /** relays to hold a reservation on at once (default 2) */
  relayCount?: number
  /** how often to refresh the relay list (default 60 s; the original client polled every 11 min) */
  pollIntervalMs?: number
  /** how often to verify reservations are alive (default 2 s) */
  checkIntervalMs?: number
  /** the account's API key: with it the manager gets relay tickets and presents them before reserving and dialing */
  apiKey?: string
  /**
   * Relay addrs the manager may dial (the discovery API's policy): unspecified, link-local, multicast
   * and broadcast addrs are always dropped; `{ publicOnly: true }` drops loopback and private ones too.
   */
  addressPolicy?: AddressPolicy
  /** random numbers in [0, 1) for the jitter (tests make it fixed); default Math.random */
  random?: () => number
  /** log hook; default silent */
  onEvent?: (event: RelayManagerEvent) => void
}

export type RelayManagerEvent =
  | { type: 'relays', relays: string[] }
  | { type: 'reserved', relay: string, addrs: string[] }
  | { type: 'reservation_lost', relay: string }
  /** a reservation given up on purpose: the relay is no longer among the chosen ones and they all hold */
  | { type: 'released', relay: string }
  | { type: 'reserve_failed', relay: string, error: string }
  | { type: 'discovery_failed', error: string }

/** A relay we reserve on, try to, or still hold while its replacement is being reserved. */
export interface HeldRelay {
  info: RelayInfo
  peerId: PeerId
  /** a 'reserved' event was sent and no 'reservation_lost' since: the loss is reported once */
  reported: boolean
  /** a reservation attempt in flight; resolves to whether it holds */
  reserving?: Promise<boolean>
  ticketing?: Promise<void>
}

/** A relay that failed and has not been retried successfully since (docs/protocol.md section 4). */
export interface UnusableRelay {
  failures: number
  nextAttempt: number
}

/** discovery polls after failures (or empty lists): 1 s doubling to 30 s, jittered */
export const DISCOVERY_BACKOFF = { initialMs: 1000, maxMs: 30_000 }
/** retrying an unusable relay: 0.5 s doubling to 10 s, jittered */
export const RESERVE_BACKOFF = { initialMs: 500, maxMs: 10_000 }
/** connecting to a relay and reserving: give up (the relay is unusable) after this */
export const RESERVE_TIMEOUT_MS = 10_000
/** the refresh a relay failure schedules: after a uniform 0..FAILURE_REFRESH_SPREAD_MS delay, at most once per FAILURE_REFRESH_MIN_GAP_MS */
export const FAILURE_REFRESH_SPREAD_MS = 2_000
export const FAILURE_REFRESH_MIN_GAP_MS = 10_000

/** The failover timings (docs/protocol.md section 6), for models and benchmarks that must use the SDK's numbers. */
export const FAILOVER_TIMING = {
  retryBackoff: RESERVE_BACKOFF,
  reserveTimeoutMs: RESERVE_TIMEOUT_MS,
  refreshSpreadMs: FAILURE_REFRESH_SPREAD_MS,
  refreshMinGapMs: FAILURE_REFRESH_MIN_GAP_MS
} as const
