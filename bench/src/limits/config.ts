/** The limits bench's knobs (LIMITS_* environment variables) and its log. */
import { partsFromEnv, sectionOutFromEnv } from '../lib/bench-run.ts'
import { envNumber } from '../lib/env.ts'
import { benchLog } from '../lib/script.ts'

const PARTS = ['checks', 'conns', 'throughput', 'floods'] as const

function envList (name: string, dflt: number[]): number[] {
  const v = process.env[name]
  if (v == null || v === '') return dflt
  const list = v.split(',').map((s) => Number(s.trim()))
  if (list.some((n) => !Number.isFinite(n) || n <= 0)) throw new Error(`${name} must be a comma list of positive numbers, got ${JSON.stringify(v)}`)
  return list
}

export const config = {
  /** timed allow() calls per variant */
  checks: Math.round(envNumber('LIMITS_CHECKS', 20_000)),
  /** distinct keys (IPs) the allowed-path checks rotate over */
  checkKeys: Math.round(envNumber('LIMITS_CHECK_KEYS', 1000)),
  /** sequential new connections per relay (end to end) */
  conns: Math.round(envNumber('LIMITS_CONNS', 500)),
  /** connections per block; the relays alternate block by block */
  connBlock: Math.round(envNumber('LIMITS_CONN_BLOCK', 50)),
  /** source addresses the end-to-end dials rotate over (127.50.x.y) */
  connSources: Math.round(envNumber('LIMITS_CONN_SOURCES', 200)),
  /** MiB per transfer and transfers per relay */
  mib: envNumber('LIMITS_MIB', 128),
  reps: Math.round(envNumber('LIMITS_REPS', 3)),
  chunkKiB: envNumber('LIMITS_CHUNK_KIB', 64),
  /** flood rates (new connections per second), both series */
  rates: envList('LIMITS_RATES', [250, 500, 1000, 2000, 3000, 4000, 6000]),
  stepS: envNumber('LIMITS_STEP_S', 5),
  /** source addresses of the connect flood (127.40.x.y) */
  floodSources: Math.round(envNumber('LIMITS_FLOOD_SOURCES', 200)),
  /** the legitimate peer starts at most one attempt per this many ms */
  legitSpacingMs: envNumber('LIMITS_LEGIT_SPACING_MS', 200),
  /** reservations before the floods, as the baseline */
  legitBaseline: Math.round(envNumber('LIMITS_LEGIT_BASELINE', 20)),
  /** a legit attempt slower than this is a failure */
  legitTimeoutMs: envNumber('LIMITS_LEGIT_TIMEOUT_MS', 10_000),
  /** the "absorbed" criterion */
  legitP99LimitMs: envNumber('LIMITS_LEGIT_P99_MS', 1000),
  /** max wait for connections to return to the baseline after a step */
  settleMaxMs: envNumber('LIMITS_SETTLE_MAX_MS', 8000),
  /** comma list of checks, conns, throughput, floods (default: all); a partial run writes the doc only if LIMITS_OUT is set */
  parts: partsFromEnv('LIMITS', PARTS),
  /** the document whose `limits` section gets the report; '-' = nowhere */
  out: sectionOutFromEnv('LIMITS'),
  json: process.env.LIMITS_JSON ?? '',
  deadlineS: envNumber('LIMITS_DEADLINE_S', 290)
}

export const log = benchLog('limits')
