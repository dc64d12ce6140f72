/**
 * `npx node bench/src/limits.ts`: what the relay's limits cost and what they
 * buy, in one run (about 3 minutes), written as the `limits` section of
 * docs/benchmarks.md.
 *
 * 1. Cost per new connection of the per-IP rate check:
 *    a. RelayRateLimiter.allow('ip_connection', ip) in this process, memory
 *       only and shared through a real Redis (µs per check, Redis commands
 *       per check from INFO commandstats deltas, socket writes per check);
 *    b. end to end: sequential new connections (TCP + Noise + Yamux, plain
 *       js-libp2p dial, then hang up) against a relay with limits off and one
 *       with limits on (defaults + --redis, per-IP rate raised so nothing is
 *       refused), interleaved in blocks.
 * 2. Relayed throughput through the same two relays: same dialer + listener
 *    (src/peers-process.ts), interleaved transfers, median MiB/s and relay
 *    CPU seconds per GiB.
 * 3. Floods against a relay with limits on (defaults + --redis): stepped
 *    connect floods (open and drop, rotating source addresses 127.40.x.y) and
 *    half-open floods (idle connections, each from its own address
 *    127.41.x.y+), while a legitimate peer (fresh node per attempt) keeps
 *    reserving; per step the achieved flood rate and the legitimate peer's
 *    p50 / p99 / failures; relay RSS and connections before / after.
 *
 * Everything on loopback, bounded in count and time; child processes (relays,
 * Redis, peers, flood generator) are stopped at the end, on error, on Ctrl-C,
 * and exit by themselves when this process goes away (Redis excepted: it is
 * killed from an exit handler). Knobs: LIMITS_* environment variables, see
 * `config` below.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { newConfig, parseConfig, RelayMetrics } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { startRedis, type RedisServer } from '@pos-relay/testing'
import { createLibp2p } from 'libp2p'
// not exported by @pos-relay/relay's index: the compiled module itself
import { RelayRateLimiter, type RateLimitSettings } from '../../relay-image/dist/rate-limits.js'
import { benchScript, killAllChildren, spawnChild, type Child } from './lib/children.ts'
import { envNumber } from './lib/env.ts'
import { loadavg, machineInfo, packageVersion, type LoadAvg, type MachineInfo } from './lib/machine.ts'
import { readCpuSeconds, readMem } from './lib/proc.ts'
import { BENCH_DOC, writeSection } from './lib/report.ts'
import { attempter, benchLog, runScript } from './lib/script.ts'
import { median, summarize, type Summary } from './lib/stats.ts'
import type { TransferResult } from './lib/transfer.ts'
import { killAllRelays, metricValue, p2pConnectionCount, p2pSockets, socketCount, startCliRelay, type CliRelay } from './lib/cli.ts'
import { legitReservation, type LegitResult } from './limits/hop.ts'
import { callsDelta, commandCalls, redisCommand } from './lib/redis-admin.ts'
import { limitsSection, renderLimitsReport } from './limits/report.ts'

const MiB = 1024 * 1024

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
  parts: new Set((process.env.LIMITS_ONLY ?? 'checks,conns,throughput,floods').split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    if (!['checks', 'conns', 'throughput', 'floods'].includes(x)) throw new Error(`LIMITS_ONLY: unknown part ${x}`)
    return x
  })),
  /** the document whose `limits` section gets the report; '-' = nowhere */
  out: process.env.LIMITS_OUT ?? (process.env.LIMITS_ONLY != null ? '-' : BENCH_DOC),
  json: process.env.LIMITS_JSON ?? '',
  deadlineS: envNumber('LIMITS_DEADLINE_S', 290)
}

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

export interface LimitsResults {
  machine: MachineInfo
  config: typeof config
  loadavg: Record<string, LoadAvg>
  checks: CheckResult[]
  conns: ConnResult[]
  throughput: ThroughputResult[]
  flood?: FloodResult
  /** the relay's default limits (what part 3 runs with) */
  defaults: { limits: Record<string, number>, rate_limits: Record<string, unknown> }
  /** rate-limiter-flexible's version (not in machineInfo's list) */
  rateLimiterVersion: string
  errors: string[]
  durationS: number
}

const log = benchLog('limits')

const ipOf = (block: number, i: number): string => `127.${block + Math.floor(i / (254 * 256))}.${Math.floor(i / 254) % 256}.${1 + (i % 254)}`
const keyIp = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
// 'error': closing a Redis-backed limiter logs a warning about Redis going away
const quietLogger = createLogger({ name: 'bench-limits', level: 'error' })

function settings (points: number, redisUrl?: string): RateLimitSettings {
  return { redis_url: redisUrl, ip_connections_per_second: points, peer_reservations_per_minute: 0, peer_circuits_per_minute: 0, account_circuits_per_minute: 0 }
}

/** Part 1a: allow() in this process. */
async function measureChecks (label: string, store: 'memory' | 'redis', points: number, keys: number, redis?: RedisServer): Promise<CheckResult> {
  const limiter = new RelayRateLimiter({ settings: settings(points, store === 'redis' ? redis!.url : undefined), metrics: new RelayMetrics(), logger: quietLogger })
  try {
    const client = (limiter as any).redis as { status: string, stream?: { write: (...a: unknown[]) => boolean } } | undefined
    if (store === 'redis') {
      const until = Date.now() + 10_000
      while (client?.status !== 'ready') {
        if (Date.now() > until) throw new Error(`limiter's Redis connection not ready (${client?.status})`)
        await sleep(20)
      }
    }
    // warm-up: JIT, Lua script loaded (first EVALSHA -> NOSCRIPT -> EVAL)
    for (let i = 0; i < 2000; i++) await limiter.allow('ip_connection', keyIp(100_000 + (i % keys)))
    await sleep(1100) // fresh 1 s windows
    let writes = 0
    const stream = client?.stream
    const origWrite = stream?.write
    if (stream != null && origWrite != null) {
      stream.write = function (this: unknown, ...a: unknown[]) { writes++; return origWrite.apply(this, a) }
    }
    const before = redis != null ? await commandCalls(redis.port) : {}
    const samples = new Array<number>(config.checks)
    let refused = 0
    const redisCpu0 = redis != null ? readCpuSeconds(redis.pid) : 0
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (let i = 0; i < config.checks; i++) {
      const key = keyIp(i % keys)
      const t = performance.now()
      const ok = await limiter.allow('ip_connection', key)
      samples[i] = (performance.now() - t) * 1000
      if (!ok) refused++
    }
    const wallMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const redisCpuS = redis != null ? readCpuSeconds(redis.pid) - redisCpu0 : 0
    if (stream != null && origWrite != null) stream.write = origWrite
    const res: CheckResult = { label, store, points, keys, n: config.checks, us: summarize(samples), wallUsPerCheck: wallMs * 1000 / config.checks, refused, clientCpuUsPerCheck: (cpu.user + cpu.system) / config.checks }
    if (redis != null) {
      const delta = callsDelta(before, await commandCalls(redis.port))
      res.redisCommandsPerCheck = Object.fromEntries(Object.entries(delta).map(([k, v]) => [k, v / config.checks]))
      res.redisCommandsTotalPerCheck = Object.values(delta).reduce((a, b) => a + b, 0) / config.checks
      res.socketWritesPerCheck = writes / config.checks
      res.redisCpuUsPerCheck = redisCpuS * 1e6 / config.checks
    }
    log(`${label}: mean ${res.us.mean.toFixed(1)} µs, p50 ${res.us.p50.toFixed(1)}, p99 ${res.us.p99.toFixed(1)} µs; refused ${refused}/${config.checks}; client CPU ${res.clientCpuUsPerCheck.toFixed(1)} µs/check` +
      (res.redisCommandsPerCheck != null ? `; Redis ${JSON.stringify(res.redisCommandsPerCheck)} per check, ${res.socketWritesPerCheck!.toFixed(3)} socket writes per check, redis-server CPU ${res.redisCpuUsPerCheck!.toFixed(1)} µs/check` : ''))
    return res
  } finally {
    await limiter.close()
  }
}

const RELAY_OFF = ['--ip-connections-per-second', '0', '--peer-reservations-per-minute', '0', '--peer-circuits-per-minute', '0']
const relayOn = (redisUrl: string): string[] => ['--redis', redisUrl, '--ip-connections-per-second', '100000']

const relayArgsForDoc = (r: CliRelay): string => r.flags.length === 0 ? '(defaults)' : r.flags.join(' ').replace(/redis:\/\/[^ ]+/, 'redis://127.0.0.1:<port>')

async function denialCounts (relay: CliRelay): Promise<Record<string, number>> {
  const text = await relay.metrics()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^pos_relay_denials_total\{reason="([^"]+)"\} (\S+)$/gm)) out[m[1]!] = Number(m[2])
  return out
}

function countsDelta (a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0)
  return out
}

/** Part 1b: sequential new connections against both relays, block by block. */
async function measureConnections (relays: Array<{ label: string, relay: CliRelay }>, redis: RedisServer): Promise<ConnResult[]> {
  const dialOpts: { localAddress: string } = { localAddress: ipOf(50, 0) }
  // dialOpts is spread into net.connect() options on every dial: rotating the
  // source address keeps libp2p's per-host inbound threshold (10/s on the
  // limits-off relay) and the per-IP limits out of the measurement
  const dialer = await createLibp2p({ transports: [tcp({ dialOpts: dialOpts as any })], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  let src = 0
  const one = async (r: CliRelay): Promise<{ dialMs: number, totalMs: number } | undefined> => {
    dialOpts.localAddress = ipOf(50, src++ % config.connSources)
    const t0 = performance.now()
    try {
      const conn = await dialer.dial(multiaddr(r.addr), { signal: AbortSignal.timeout(10_000) })
      const t1 = performance.now()
      await conn.close()
      return { dialMs: t1 - t0, totalMs: performance.now() - t0 }
    } catch {
      await dialer.hangUp(multiaddr(r.addr)).catch(() => {})
      return undefined
    }
  }
  try {
    const state = relays.map(({ label, relay }) => ({ label, relay, dial: [] as number[], total: [] as number[], cpuS: 0, failed: 0, redis: {} as Record<string, number>, denials0: {} as Record<string, number> }))
    for (const s of state) {
      for (let i = 0; i < 30; i++) await one(s.relay) // warm-up
      s.denials0 = await denialCounts(s.relay)
    }
    const blocks = Math.ceil(config.conns / config.connBlock)
    for (let b = 0; b < blocks; b++) {
      const order = b % 2 === 0 ? state : [...state].reverse()
      for (const s of order) {
        const n = Math.min(config.connBlock, config.conns - b * config.connBlock)
        const before = await commandCalls(redis.port)
        const c0 = readCpuSeconds(s.relay.pid)
        for (let i = 0; i < n; i++) {
          const r = await one(s.relay)
          if (r == null) { s.failed++; continue }
          s.dial.push(r.dialMs)
          s.total.push(r.totalMs)
        }
        s.cpuS += readCpuSeconds(s.relay.pid) - c0
        for (const [k, v] of Object.entries(callsDelta(before, await commandCalls(redis.port)))) s.redis[k] = (s.redis[k] ?? 0) + v
      }
    }
    const out: ConnResult[] = []
    for (const s of state) {
      const n = s.dial.length
      const denials = countsDelta(s.denials0, await denialCounts(s.relay))
      const r: ConnResult = {
        label: s.label,
        args: relayArgsForDoc(s.relay),
        n,
        dial: summarize(s.dial),
        total: summarize(s.total),
        connsPerSec: n / (s.total.reduce((a, x) => a + x, 0) / 1000),
        relayCpuMsPerConn: s.cpuS * 1000 / (n + s.failed),
        refusedOrFailed: s.failed,
        denials
      }
      if (s.relay.args.includes('--redis')) r.redisCommandsPerConn = Object.fromEntries(Object.entries(s.redis).map(([k, v]) => [k, v / (n + s.failed)]))
      log(`connections, ${s.label}: dial p50 ${r.dial.p50.toFixed(2)} ms, p99 ${r.dial.p99.toFixed(2)} ms; dial + hang up p50 ${r.total.p50.toFixed(2)} ms; ${r.connsPerSec.toFixed(0)} conn/s; relay CPU ${r.relayCpuMsPerConn.toFixed(2)} ms/conn; failed ${s.failed}` +
        (r.redisCommandsPerConn != null ? `; Redis per conn ${JSON.stringify(r.redisCommandsPerConn)}` : ''))
      out.push(r)
    }
    return out
  } finally {
    await dialer.stop()
  }
}

/** Part 2: relayed throughput through both relays, interleaved. */
async function measureThroughput (relays: Array<{ label: string, relay: CliRelay }>, errors: string[]): Promise<ThroughputResult[]> {
  let peers: Child | undefined
  try {
    peers = await spawnChild(benchScript('peers-process.ts'), { name: 'peers' })
    const reserveMs: number[] = []
    for (const { relay } of relays) reserveMs.push((await peers.call('listen', { relay: relay.addr })).reserveMs)
    await sleep(1000)
    const bytes = Math.round(config.mib * MiB)
    const timeoutMs = 30_000 + Math.ceil(config.mib / 2) * 1000
    const rows: TransferRow[][] = relays.map(() => [])
    const failures = relays.map(() => 0)
    for (let round = 0; round < config.reps; round++) {
      for (let j = 0; j < relays.length; j++) {
        const i = (j + round) % relays.length
        const { label, relay } = relays[i]!
        const c0 = readCpuSeconds(relay.pid)
        let r: TransferResult
        try {
          r = await peers.call('transfer', { mode: 'relay', relay: relay.addr, bytes, chunkBytes: config.chunkKiB * 1024, timeoutMs }, timeoutMs + 5000)
        } catch (err: any) {
          // one failed transfer must not lose the others: record it and go on
          const msg = String(err?.message ?? err).split('\n')[0]!
          log(`transfer round ${round + 1}/${config.reps}, ${label} FAILED: ${msg}\n--- ${relay.name} stderr (tail) ---\n${relay.stderrTail()}`)
          errors.push(`transfer round ${round + 1} via ${label}: ${msg}`)
          failures[i]!++
          continue
        }
        const relayCpuS = readCpuSeconds(relay.pid) - c0
        rows[i]!.push({ relay: label, round: round + 1, mibPerSec: r.mibPerSec, relayCpuS, openMs: r.openMs })
        log(`transfer round ${round + 1}/${config.reps}, ${label}: ${r.mibPerSec.toFixed(1)} MiB/s, relay CPU ${relayCpuS.toFixed(2)} s`)
      }
    }
    return relays.map(({ label, relay }, i) => {
      const t = rows[i]!
      const cpu = t.reduce((a, x) => a + x.relayCpuS, 0)
      return { label, medianMiBps: median(t.map((x) => x.mibPerSec)), transfers: t, failed: failures[i]!, cpuSPerGiB: cpu / (t.length * bytes / 1024 ** 3), reserveMs: reserveMs[i]!, rssAfterMiB: readMem(relay.pid).rssMiB }
    })
  } finally {
    await peers?.stop()
  }
}

async function relayConnections (relay: CliRelay): Promise<number> {
  return metricValue(await relay.metrics(), 'pos_relay_connections_active')
}

/** Waits until the relay's libp2p connections, TCP connections on its p2p port and socket fds are back to the baseline and its accept queue is empty; ms waited. */
async function settle (relay: CliRelay, baseConns: number, baseTcp: number, baseSockets: number, maxMs: number): Promise<{ ms: number, settled: boolean }> {
  const t0 = performance.now()
  while (performance.now() - t0 < maxMs) {
    const tcp = p2pSockets(relay.pid, relay.port)
    // +1: the keep-alive connection of the bench's own /metrics requests may come and go
    if (tcp.connections <= baseTcp && tcp.acceptQueue === 0 && socketCount(relay.pid) <= baseSockets + 1 && await relayConnections(relay) <= baseConns) return { ms: performance.now() - t0, settled: true }
    await sleep(50)
  }
  return { ms: performance.now() - t0, settled: false }
}

/** The legitimate peer: paced reservations until `done()`. */
async function legitLoop (relayAddr: string, done: () => boolean, maxN = Infinity): Promise<LegitResult[]> {
  const ma = multiaddr(relayAddr)
  const out: LegitResult[] = []
  let last = 0
  while (!done() && out.length < maxN) {
    const wait = last + config.legitSpacingMs - performance.now()
    if (wait > 0) await sleep(wait)
    if (done()) break
    last = performance.now()
    out.push(await legitReservation(ma, config.legitTimeoutMs))
  }
  return out
}

const failed = (r: LegitResult): boolean => r.status !== 100

/** Part 3: stepped floods against a relay with default limits + Redis. */
async function measureFloods (dir: string, redis: RedisServer, results: LimitsResults): Promise<FloodResult> {
  let relay: CliRelay | undefined
  let flood: Child | undefined
  try {
    relay = await startCliRelay('relay-flood', dir, ['--redis', redis.url])
    flood = await spawnChild(benchScript('limits/flood-process.ts'), { name: 'flood' })
    log(`flood target: relay pid ${relay.pid} ${relay.addr} (${relayArgsForDoc(relay)}); flood generator pid ${flood.pid}`)
    await legitLoop(relay.addr, () => false, 3) // warm-up
    await sleep(1000)
    const quiet = await legitLoop(relay.addr, () => false, config.legitBaseline)
    await sleep(1000)
    const baseConns = await relayConnections(relay)
    const baseTcp = p2pConnectionCount(relay.pid, relay.port)
    const baseSockets = socketCount(relay.pid)
    const rssBefore = readMem(relay.pid).rssMiB
    const quietOk = quiet.filter((r) => !failed(r)).map((r) => r.ms)
    const baseline = { legit: summarize(quietOk), failures: quiet.length - quietOk.length, connections: baseConns, tcp: baseTcp, sockets: baseSockets, rssMiB: rssBefore }
    log(`baseline: legit reservation p50 ${baseline.legit.p50.toFixed(1)} ms, p99 ${baseline.legit.p99.toFixed(1)} ms (n=${quiet.length}, failures ${baseline.failures}); relay ${baseConns} libp2p connections, ${baseTcp} TCP connections on its port, ${baseSockets} sockets in all, RSS ${rssBefore.toFixed(0)} MiB`)

    const steps: FloodStep[] = []
    let halfOpenOffset = 0
    for (const series of ['connect', 'halfopen'] as const) {
      for (const rate of config.rates) {
        const durationMs = config.stepS * 1000
        const m0 = await denialCounts(relay)
        const c0 = readCpuSeconds(relay.pid)
        const f0 = readCpuSeconds(flood.pid)
        const t0 = performance.now()
        let floodDone = false
        const params = series === 'connect'
          ? { port: relay.port, mode: 'connect', rate, durationMs, block: 40, addresses: config.floodSources }
          : { port: relay.port, mode: 'halfopen', rate, durationMs, block: 41, offset: halfOpenOffset }
        const floodP = flood.call<Record<string, any>>('flood', params, durationMs + 30_000).finally(() => { floodDone = true })
        floodP.catch(() => {})
        // give the flood a head start of 300 ms so every legit attempt runs under it
        await sleep(300)
        const legit = await legitLoop(relay.addr, () => floodDone)
        const fr = await floodP
        const wallS = (performance.now() - t0) / 1000
        if (series === 'halfopen') halfOpenOffset += fr.attempted + fr.skippedFdCap
        const relayCpuS = readCpuSeconds(relay.pid) - c0
        const relayCpuBusy = relayCpuS / wallS
        const floodCpuBusy = (readCpuSeconds(flood.pid) - f0) / wallS
        const denials = countsDelta(m0, await denialCounts(relay))
        const { connections: relayTcpAtEnd, acceptQueue: acceptQueueAtEnd } = p2pSockets(relay.pid, relay.port)
        const relayConnsAtEnd = await relayConnections(relay)
        const relayRssMiB = readMem(relay.pid).rssMiB
        const la = loadavg()
        const st = await settle(relay, baseConns, baseTcp, baseSockets, config.settleMaxMs)
        const ok = legit.filter((r) => !failed(r)).map((r) => r.ms)
        const errs = [...new Set(legit.filter(failed).map((r) => r.error ?? `status ${r.status}`))]
        const s = summarize(ok)
        const lg = { n: legit.length, p50: s.p50, p99: s.p99, max: s.max, failures: legit.length - ok.length, errors: errs }
        const passed = lg.n > 0 && lg.failures === 0 && lg.p99 < config.legitP99LimitMs
        steps.push({ series, rate, flood: fr, legit: lg, relayCpuBusy, relayCpuS, floodCpuBusy, denials, relayRssMiB, relayTcpAtEnd, acceptQueueAtEnd, relayConnsAtEnd, settleMs: st.ms, settled: st.settled, loadavg: la, passed })
        log(`${series} ${rate}/s: achieved ${fr.connectedPerSec.toFixed(0)}/s connected (${fr.attemptedPerSec.toFixed(0)}/s attempted, ${fr.connectTimeouts} connect timeouts, errors ${JSON.stringify(fr.errors)}); ` +
          `legit n=${lg.n} p50 ${lg.p50?.toFixed(1)} p99 ${lg.p99?.toFixed(1)} ms, failures ${lg.failures}${errs.length > 0 ? ` (${errs.join('; ')})` : ''}; relay CPU ${Math.round(relayCpuBusy * 100)} %, flood CPU ${Math.round(floodCpuBusy * 100)} %; ` +
          `denials ${JSON.stringify(denials)}; relay ${relayConnsAtEnd} libp2p conns / ${relayTcpAtEnd} TCP conns / ${acceptQueueAtEnd} in accept queue at end, RSS ${relayRssMiB.toFixed(0)} MiB; settled ${st.settled ? 'in' : 'NOT after'} ${st.ms.toFixed(0)} ms; load ${la.join(' ')}`)
        // fresh 1 s windows for the next step
        await sleep(1200)
      }
    }
    await sleep(1000)
    const final = await settle(relay, baseConns, baseTcp, baseSockets, config.settleMaxMs)
    const mem = readMem(relay.pid)
    const after = { connections: await relayConnections(relay), tcp: p2pConnectionCount(relay.pid, relay.port), sockets: socketCount(relay.pid), rssMiB: mem.rssMiB, hwmMiB: mem.hwmMiB, settled: final.settled, settleMs: final.ms }
    log(`after the floods: relay ${after.connections} libp2p connections (baseline ${baseConns}), ${after.tcp} TCP connections on its port (baseline ${baseTcp}), ${after.sockets} sockets in all (baseline ${baseSockets}), RSS ${rssBefore.toFixed(0)} -> ${after.rssMiB.toFixed(0)} MiB (peak ${after.hwmMiB.toFixed(0)} MiB)`)
    const largest = Object.fromEntries((['connect', 'halfopen'] as const).map((series) => {
      const ss = steps.filter((s) => s.series === series).sort((x, y) => x.rate - y.rate)
      let rate: number | null = null
      for (const s of ss) { if (!s.passed) break; rate = s.rate }
      const passing = ss.filter((s) => s.passed).map((s) => s.rate)
      return [series, { rate, highestPassing: passing.length > 0 ? Math.max(...passing) : null }]
    })) as FloodResult['largest']
    log(`largest rate absorbed: connect ${largest.connect.rate ?? 'none'}/s (highest passing ${largest.connect.highestPassing ?? 'none'}), half-open ${largest.halfopen.rate ?? 'none'}/s (highest passing ${largest.halfopen.highestPassing ?? 'none'})`)
    results.loadavg['after floods'] = loadavg()
    return { relayArgs: relayArgsForDoc(relay), baseline, steps, after, largest }
  } finally {
    await flood?.stop()
    await relay?.stop()
  }
}

async function main (): Promise<void> {
  const started = performance.now()
  const defaultConfig = parseConfig(await newConfig({ p2p_secret: 'bench' }))
  const defaults = { limits: { ...defaultConfig.limits }, rate_limits: { ...defaultConfig.rate_limits } }
  const rateLimiterVersion = packageVersion('rate-limiter-flexible')
  const results: LimitsResults = { machine: machineInfo(), config, loadavg: { start: loadavg() }, checks: [], conns: [], throughput: [], defaults, rateLimiterVersion, errors: [], durationS: 0 }
  log(`load average at start: ${results.loadavg.start!.join(' ')} (${results.machine.cores} cores)`)
  const dir = mkdtempSync(join(os.tmpdir(), 'pos-relay-bench-limits-'))
  let redis: RedisServer | undefined
  const attempt = attempter(results.errors, log)
  try {
    redis = await startRedis()
    log(`redis-server at ${redis.url} (pid ${redis.pid})`)

    // 1a. the check itself, in process
    if (config.parts.has('checks')) {
      await attempt('allow() in process', async () => {
        results.checks.push(await measureChecks('memory, allowed', 'memory', 100_000, config.checkKeys))
        results.checks.push(await measureChecks('Redis, allowed', 'redis', 100_000, config.checkKeys, redis))
        results.checks.push(await measureChecks('memory, refused (limit 1/s, 10 keys)', 'memory', 1, 10))
        results.checks.push(await measureChecks('Redis, refused (limit 1/s, 10 keys)', 'redis', 1, 10, redis))
      })
    }
    results.loadavg['after part 1a'] = loadavg()

    // 1b + 2: the same two relays
    if (config.parts.has('conns') || config.parts.has('throughput')) {
      await attempt('relays off / on', async () => {
        await redisCommand(redis!.port, ['FLUSHALL'])
        const relays: Array<{ label: string, relay: CliRelay }> = []
        try {
          relays.push({ label: 'limits off', relay: await startCliRelay('relay-off', dir, RELAY_OFF) })
          relays.push({ label: 'limits on (+ Redis)', relay: await startCliRelay('relay-on', dir, relayOn(redis!.url)) })
          for (const { label, relay } of relays) log(`${label}: relay pid ${relay.pid} at ${relay.addr}: ${relayArgsForDoc(relay)}`)
          if (config.parts.has('conns')) await attempt('new connections', async () => { results.conns.push(...await measureConnections(relays, redis!)) })
          results.loadavg['after part 1b'] = loadavg()
          if (config.parts.has('throughput')) await attempt('relayed throughput', async () => { results.throughput.push(...await measureThroughput(relays, results.errors)) })
          results.loadavg['after part 2'] = loadavg()
        } finally {
          await Promise.all(relays.map(async ({ relay }) => { await relay.stop() }))
        }
      })
    }

    // 3. floods
    if (config.parts.has('floods')) {
      await attempt('floods', async () => {
        await redisCommand(redis!.port, ['FLUSHALL'])
        results.flood = await measureFloods(dir, redis!, results)
      })
    }
  } finally {
    await redis?.stop().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  results.loadavg.end = loadavg()
  results.durationS = (performance.now() - started) / 1000
  const report = renderLimitsReport(results)
  process.stdout.write(report)
  log(writeSection(config.out, limitsSection(results, report)))
  if (config.json !== '') writeFileSync(config.json, JSON.stringify(results, null, 2) + '\n')
  if (results.errors.length > 0) process.exitCode = 1
}

await runScript('limits', { deadlineS: config.deadlineS, cleanup: () => { killAllRelays(); killAllChildren() }, log }, main)
