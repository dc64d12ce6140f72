/** What the auth bench measures, part by part (rendered by report.ts). */
import type { BenchResultsBase } from '../lib/bench-run.ts'
import type { CliRelay } from '../lib/cli.ts'
import type { config } from './config.ts'

export interface RelayVariant { key: 'off' | 'on' | 'control', label: string, relay: CliRelay, auth: boolean }

export interface AuthTransfer { round: number, mibPerSec: number, relayCpuS: number, openMs: number, ms: number, presentMs?: number }

export interface VariantResult {
  key: RelayVariant['key']
  label: string
  flags: string
  transfers: AuthTransfer[]
  failed: number
  medianMiBps: number
  cpuSPerGiB: number
  /** relay CPU seconds per transfer second, over the timed transfers */
  relayBusy: number
  reserveMs: number
  rssAfterMiB: number
}

export interface MeteringCheck {
  account: string
  /** payload the dialer sent through the auth relay (warm-up included), bytes */
  payloadToDestination: number
  /** the listener's replies (byte counts as text) */
  payloadToSource: number
  transfers: number
  /** the relay's pos_relay_relayed_bytes_total */
  relayToDestination: number
  relayToSource: number
  /** GET /api/admin/usage, summed over the hours */
  usage: { bytes_to_destination: number, bytes_to_source: number, circuits: number, circuit_seconds: number, reservation_seconds: number }
  /** the fleet quota counter pos-relay:quota:<account>:<month> */
  quotaCounter: number
  /** ms from the last transfer until the usage equalled the relay's counters */
  settledMs: number
  matches: boolean
}

export interface RatePass { n: number, cpuS: number, wallS: number }
export interface RateResult {
  label: string
  n: number
  passes: RatePass[]
  /** median over passes of n / cpuS */
  perCpuSecond: number
  /** median over passes of n / wallS (one at a time) */
  perWallSecond: number
  /** µs of CPU per operation (median pass) */
  cpuUs: number
  /** wrong outcomes (a valid ticket refused, a broken one accepted or refused for another reason) */
  wrong: number
}

export interface IssuanceResult {
  n: number
  wallS: number
  perWallSecond: number
  /** discovery process CPU per ticket, µs */
  discoveryCpuUs: number
  /** redis-server CPU per ticket, µs */
  redisCpuUs: number
  /** discovery CPU seconds for all of them */
  discoveryCpuS: number
  ticketBytes: number
}

export interface AuthResults extends BenchResultsBase {
  config: typeof config
  relays: VariantResult[]
  metering?: MeteringCheck
  issuance?: IssuanceResult
  issueInProcess?: RateResult
  /** UsageMeter.add() per relayed chunk, the only per-byte work auth adds (in process, no flush) */
  meterAdd?: RateResult
  verify: RateResult[]
}
