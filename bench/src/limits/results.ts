/** What the limits bench measures, part by part (rendered by report.ts). */
import type { BenchResultsBase } from '../lib/bench-run.ts'
import type { LoadAvg } from '../lib/machine.ts'
import type { Summary } from '../lib/stats.ts'
import type { config } from './config.ts'

export interface CheckResult {
  label: string
  store: 'memory' | 'redis'
  /** per-IP limit the limiter was built with */
  points: number
  keys: number
  n: number
  /** per-call latency, µs */
  us: Summary
  /** wall time / n, µs (includes the loop) */
  wallUsPerCheck: number
  refused: number
  /** Redis only: INFO commandstats delta / n, by command */
  redisCommandsPerCheck?: Record<string, number>
  redisCommandsTotalPerCheck?: number
  /** Redis only: writes on the limiter's Redis socket / n (client-side round trips) */
  socketWritesPerCheck?: number
  /** CPU time of this (the client) process per check, µs */
  clientCpuUsPerCheck: number
  /** Redis only: CPU time of redis-server per check, µs */
  redisCpuUsPerCheck?: number
}

export interface ConnResult {
  label: string
  args: string
  n: number
  /** TCP connect + Noise + Yamux until dial() resolves, ms */
  dial: Summary
  /** dial + hangUp, ms */
  total: Summary
  connsPerSec: number
  /** relay CPU ms per connection (utime + stime of the relay process over the timed blocks) */
  relayCpuMsPerConn: number
  refusedOrFailed: number
  /** Redis commands per connection seen while this relay was dialled (on only) */
  redisCommandsPerConn?: Record<string, number>
  denials: Record<string, number>
}

export interface TransferRow { relay: string, round: number, mibPerSec: number, relayCpuS: number, openMs: number }
export interface ThroughputResult {
  label: string
  medianMiBps: number
  transfers: TransferRow[]
  /** transfers that failed (see errors) */
  failed: number
  cpuSPerGiB: number
  reserveMs: number
  rssAfterMiB: number
}

export interface FloodStep {
  series: 'connect' | 'halfopen'
  rate: number
  flood: Record<string, any>
  legit: { n: number, p50: number, p99: number, max: number, failures: number, errors: string[] }
  relayCpuBusy: number
  /** relay CPU seconds during the step (flood + legitimate peer) */
  relayCpuS: number
  floodCpuBusy: number
  denials: Record<string, number>
  relayRssMiB: number
  /** TCP connections on the relay's p2p port at the end of the step (handshaking ones included) */
  relayTcpAtEnd: number
  /** connections in the kernel's accept queue of the relay's port at the end of the step */
  acceptQueueAtEnd: number
  relayConnsAtEnd: number
  settleMs: number
  settled: boolean
  loadavg: LoadAvg
  passed: boolean
}

export interface FloodResult {
  relayArgs: string
  baseline: { legit: Summary, failures: number, connections: number, tcp: number, sockets: number, rssMiB: number }
  steps: FloodStep[]
  after: { connections: number, tcp: number, sockets: number, rssMiB: number, hwmMiB: number, settled: boolean, settleMs: number }
  /**
   * rate: the largest rate such that it and every lower rate tried passed
   * (null: not even the lowest); highestPassing: the largest rate that
   * passed at all (a higher rate can pass again when the per-IP limits
   * start refusing the flood cheaply)
   */
  largest: Record<'connect' | 'halfopen', { rate: number | null, highestPassing: number | null }>
}

export interface LimitsResults extends BenchResultsBase {
  config: typeof config
  checks: CheckResult[]
  conns: ConnResult[]
  throughput: ThroughputResult[]
  flood?: FloodResult
  /** the relay's default limits (what part 3 runs with) */
  defaults: { limits: Record<string, number>, rate_limits: Record<string, unknown> }
  /** rate-limiter-flexible's version (not in machineInfo's list) */
  rateLimiterVersion: string
}
