/** The auth bench's knobs (AUTH_* environment variables) and its log. */
import { partsFromEnv, sectionOutFromEnv } from '../lib/bench-run.ts'
import { envNumber } from '../lib/env.ts'
import { benchLog } from '../lib/script.ts'

const PARTS = ['throughput', 'tickets'] as const

export const config = {
  /** MiB per timed transfer */
  mib: envNumber('AUTH_MIB', 128),
  /** rounds: one timed transfer per relay each */
  rounds: Math.round(envNumber('AUTH_ROUNDS', 12)),
  /** untimed transfer per relay before the rounds (JIT, first circuit) */
  warmupMiB: envNumber('AUTH_WARMUP_MIB', 32),
  chunkKiB: envNumber('AUTH_CHUNK_KIB', 64),
  /** 0: no second auth-off relay (A/A control) */
  control: process.env.AUTH_CONTROL !== '0',
  /** distinct peers (and tickets) of part 2 */
  tickets: Math.round(envNumber('AUTH_TICKETS', 2000)),
  /** passes over the tickets per verification variant */
  passes: Math.round(envNumber('AUTH_PASSES', 5)),
  /** the goal: auth and metering cost at most this many % */
  goalPct: envNumber('AUTH_GOAL_PCT', 5),
  /** the account's tier (default tiers: pro = 4 GiB per circuit, 1 TiB a month, so quotas are checked) */
  tier: process.env.AUTH_TIER ?? 'pro',
  parts: partsFromEnv('AUTH', PARTS),
  /** the document whose `auth` section gets the report; '-' = nowhere; a partial run (AUTH_ONLY) writes it only when set */
  out: sectionOutFromEnv('AUTH'),
  json: process.env.AUTH_JSON ?? '',
  deadlineS: envNumber('AUTH_DEADLINE_S', 900),
  /**
   * `cli`: relays from `pos-relay init` + `pos-relay run` with the bench's flags; `pool`: relays as the
   * operator renders them from RelayPools with and without spec.auth (auth/pool-relays.ts; needs the
   * Kubernetes binaries of make test-kube), written to its own section (auth-pool), throughput only
   */
  relays: process.env.AUTH_RELAYS === 'pool' ? 'pool' as const : 'cli' as const
}
if (config.relays === 'pool') config.parts = new Set(['throughput'])

export const log = benchLog('auth')
