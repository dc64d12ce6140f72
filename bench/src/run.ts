/**
 * `npm run bench`: relay throughput, memory and CPU (our relay vs a plain
 * upstream js-libp2p relay vs a direct connection), time to reservation and
 * discovery API latency. Prints a markdown report and writes it as the
 * `run` section of docs/benchmarks.md. See bench/README.md for what is
 * measured and the BENCH_* knobs.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { benchScript, killAllChildren, spawnChild, type Child } from './lib/children.ts'
import { summariseProfile, type ProfileSummary } from './lib/cpuprofile.ts'
import { envNumber } from './lib/env.ts'
import { loadavg, machineInfo, type LoadAvg } from './lib/machine.ts'
import { readCpu, readCpuSeconds, readMem, type CpuSample, type MemSample } from './lib/proc.ts'
import { BENCH_DOC, writeSection } from './lib/report.ts'
import { renderReport, runSection } from './run/report.ts'
import { attempter, benchLog, runScript } from './lib/script.ts'
import { median, summarize, type Summary } from './lib/stats.ts'
import type { TransferResult } from './lib/transfer.ts'

const MiB = 1024 * 1024

const PARTS = ['relay', 'plain', 'direct', 'reserve', 'discovery'] as const
type Part = typeof PARTS[number]

const profileDir = process.env.BENCH_CPU_PROF != null && process.env.BENCH_CPU_PROF !== '' && process.env.BENCH_CPU_PROF !== '0'
  ? (process.env.BENCH_CPU_PROF === '1' ? fileURLToPath(new URL('../profiles/', import.meta.url)) : process.env.BENCH_CPU_PROF)
  : undefined

export const config = {
  /** MiB per transfer */
  mib: envNumber('BENCH_MIB', 256),
  /** minimum timed transfers per path */
  reps: Math.round(envNumber('BENCH_REPS', 3)),
  /** MiB relayed in total through each relay (for the RSS / CPU rows) */
  totalMiB: envNumber('BENCH_TOTAL_MIB', 1024),
  chunkKiB: envNumber('BENCH_CHUNK_KIB', 64),
  reservations: Math.round(envNumber('BENCH_RESERVATIONS', 50)),
  discoveryRelays: Math.round(envNumber('BENCH_DISCOVERY_RELAYS', 1000)),
  gets: Math.round(envNumber('BENCH_GETS', 500)),
  settleMs: envNumber('BENCH_SETTLE_MS', 3000),
  /** a transfer slower than this (MiB/s) times out */
  minMiBps: envNumber('BENCH_MIN_MIBPS', 4),
  parts: new Set<Part>((process.env.BENCH_ONLY ?? PARTS.join(',')).split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    if (!(PARTS as readonly string[]).includes(s)) throw new Error(`BENCH_ONLY: unknown part ${s} (parts: ${PARTS.join(', ')})`)
    return s as Part
  })),
  profileDir,
  /** the document whose `run` section gets the report; '-' = nowhere. Profiling and partial runs do not write it unless BENCH_OUT is set. */
  out: process.env.BENCH_OUT ?? (profileDir != null || process.env.BENCH_ONLY != null ? '-' : BENCH_DOC),
  json: process.env.BENCH_JSON ?? '',
  /** the whole run is killed after this */
  deadlineS: envNumber('BENCH_DEADLINE_S', 600)
}

export interface MemoryUsage { rssMiB: number, heapTotalMiB: number, heapUsedMiB: number, externalMiB: number, arrayBuffersMiB: number }

export interface TransferSample extends TransferResult {
  relayCpuS: number
  peersCpuS: number
  relayRssMiB: number
}

export interface PathResult {
  label: string
  transfers: TransferSample[]
  medianMiBps: number
  /** relay only */
  relay?: {
    reserveMs: number
    idle: MemSample
    after: MemSample
    /** process.memoryUsage() of the relay after the final settle */
    afterUsage: MemoryUsage
    /** process.memoryUsage() after a forced GC while the last circuit was still open */
    retained: MemoryUsage
    cpuS: number
    /** of cpuS: user (JS, crypto, GC) and system (kernel: TCP over loopback) */
    cpuUserS: number
    cpuSystemS: number
    relayedMiB: number
    /** what the relay's own metrics counted (our relay only) */
    metricsRelayedMiB?: number
    cpuSPerGiB: number
    /** relayed MiB per CPU second the relay spent while relaying */
    mibPerCpuS: number
    /** relay CPU seconds / transfer wall seconds, over the timed transfers */
    utilisation: number
    profile?: ProfileSummary
  }
  peersUtilisation: number
}

export interface ReserveResult { label: string, summary: Summary }
export interface DiscoveryResult { store: string, relays: number, summary: Summary, responseBytes: number, reqPerSec: number }

export interface BenchResults {
  machine: ReturnType<typeof machineInfo>
  config: typeof config
  layout: string
  /** load average (1 / 5 / 15 min) at moments of the run */
  loadavg: Record<string, LoadAvg>
  paths: PathResult[]
  reserve: ReserveResult[]
  discovery: DiscoveryResult[]
  errors: string[]
  durationS: number
}

const log = benchLog('bench')

function transferTimeoutMs (bytes: number): number {
  return 30_000 + Math.ceil(bytes / MiB / config.minMiBps) * 1000
}

async function stopAll (children: Array<Child | undefined>): Promise<void> {
  await Promise.all(children.map(async (c) => { await c?.stop() }))
}

const relayKinds = {
  'pos-relay': { script: 'relay-process.ts', label: 'pos-relay relay', part: 'relay' },
  plain: { script: 'plain-relay-process.ts', label: 'plain upstream js-libp2p relay', part: 'plain' }
} as const
type RelayKind = keyof typeof relayKinds

interface RelayState {
  kind: RelayKind
  child: Child
  addr: string
  reserveMs: number
  idle?: MemSample
  cpu0?: CpuSample
  profDir?: string
  profilesBefore: string[]
  transfers: TransferSample[]
  retained?: MemoryUsage
}

/**
 * Rows 1-4: our relay and the plain relay, each in its own process, and one
 * peers process (dialer + listener; the listener holds a reservation on both
 * relays). Transfers are interleaved, one per path per round with the order
 * rotating, so drift on the machine hits every path alike. The last transfer
 * through each relay keeps its circuit open while the relay's live memory is
 * measured after a forced GC.
 */
async function transferPaths (): Promise<PathResult[]> {
  const bytes = Math.round(config.mib * MiB)
  const rounds = Math.max(config.reps, Math.ceil(config.totalMiB / config.mib))
  const kinds = (Object.keys(relayKinds) as RelayKind[]).filter((k) => config.parts.has(relayKinds[k].part))
  const withDirect = config.parts.has('direct')
  const relays: RelayState[] = []
  let peers: Child | undefined
  try {
    for (const kind of kinds) {
      const profDir = config.profileDir != null ? join(config.profileDir, kind) : undefined
      if (profDir != null) mkdirSync(profDir, { recursive: true })
      const profilesBefore = profDir != null ? readdirSync(profDir) : []
      const child = await spawnChild(benchScript(relayKinds[kind].script), {
        name: kind,
        // --expose-gc only lets the bench force a GC before the one live-memory reading
        nodeArgs: ['--expose-gc', ...(profDir != null ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])]
      })
      relays.push({ kind, child, addr: child.info.addrs[0], reserveMs: 0, profDir, profilesBefore, transfers: [] })
      log(`${relayKinds[kind].label}: pid ${child.pid} at ${child.info.addrs[0]}`)
    }
    peers = await spawnChild(benchScript('peers-process.ts'), { name: 'peers' })
    log(`peers (dialer + listener): pid ${peers.pid}`)
    for (const r of relays) r.reserveMs = (await peers.call('listen', { relay: r.addr })).reserveMs
    await sleep(config.settleMs)
    for (const r of relays) {
      r.idle = readMem(r.child.pid)
      r.cpu0 = readCpu(r.child.pid)
    }

    type Path = RelayState | 'direct'
    const paths: Path[] = [...relays, ...(withDirect ? ['direct' as const] : [])]
    const direct: TransferSample[] = []
    for (let round = 0; round < rounds; round++) {
      const order = paths.map((_, i) => paths[(i + round) % paths.length]!)
      for (const path of order) {
        const last = round === rounds - 1
        const relay = path === 'direct' ? undefined : path
        const c0 = relay != null ? readCpuSeconds(relay.child.pid) : 0
        const p0 = readCpuSeconds(peers.pid)
        const r: TransferResult = await peers.call('transfer', {
          mode: relay != null ? 'relay' : 'direct',
          relay: relay?.addr,
          bytes,
          chunkBytes: config.chunkKiB * 1024,
          timeoutMs: transferTimeoutMs(bytes),
          keepOpen: relay != null && last
        }, transferTimeoutMs(bytes) + 5000)
        const sample: TransferSample = {
          ...r,
          relayCpuS: relay != null ? readCpuSeconds(relay.child.pid) - c0 : 0,
          peersCpuS: readCpuSeconds(peers.pid) - p0,
          relayRssMiB: relay != null ? readMem(relay.child.pid).rssMiB : 0
        }
        if (relay != null && last) {
          relay.retained = await relay.child.call<MemoryUsage>('memoryUsage', { gc: true })
          await peers.call('hangUp')
        }
        const name = relay != null ? relayKinds[relay.kind].label : 'direct'
        log(`round ${round + 1}/${rounds}, ${name}: ${r.mibPerSec.toFixed(1)} MiB/s` +
          (relay != null ? `, relay CPU ${sample.relayCpuS.toFixed(2)} s, relay RSS ${sample.relayRssMiB.toFixed(0)} MiB` : '') +
          `, peers CPU ${sample.peersCpuS.toFixed(2)} s, max in flight ${r.maxInFlightMiB.toFixed(1)} MiB`)
        ;(relay?.transfers ?? direct).push(sample)
      }
    }
    await sleep(config.settleMs)

    const results: PathResult[] = []
    for (const r of relays) {
      const pid = r.child.pid
      const after = readMem(pid)
      const afterUsage = await r.child.call<MemoryUsage>('memoryUsage')
      const cpu1 = readCpu(pid)
      const cpuUserS = cpu1.userS - r.cpu0!.userS
      const cpuSystemS = cpu1.systemS - r.cpu0!.systemS
      const cpuS = cpuUserS + cpuSystemS
      const relayedMiB = (bytes * r.transfers.length) / MiB
      const metricsRelayedMiB = r.kind === 'pos-relay' ? (await r.child.call<number>('relayedBytes')) / MiB : undefined
      const wallS = r.transfers.reduce((a, t) => a + t.ms / 1000, 0)
      const relayCpu = r.transfers.reduce((a, t) => a + t.relayCpuS, 0)
      results.push({
        label: relayKinds[r.kind].label,
        transfers: r.transfers,
        medianMiBps: median(r.transfers.map((t) => t.mibPerSec)),
        relay: {
          reserveMs: r.reserveMs,
          idle: r.idle!,
          after,
          afterUsage,
          retained: r.retained!,
          cpuS,
          cpuUserS,
          cpuSystemS,
          relayedMiB,
          ...(metricsRelayedMiB != null ? { metricsRelayedMiB } : {}),
          cpuSPerGiB: cpuS / (relayedMiB / 1024),
          mibPerCpuS: relayedMiB / relayCpu,
          utilisation: relayCpu / wallS
        },
        peersUtilisation: r.transfers.reduce((a, t) => a + t.peersCpuS, 0) / wallS
      })
    }
    if (withDirect) {
      const wallS = direct.reduce((a, t) => a + t.ms / 1000, 0)
      results.push({
        label: 'direct connection (no relay)',
        transfers: direct,
        medianMiBps: median(direct.map((t) => t.mibPerSec)),
        peersUtilisation: direct.reduce((a, t) => a + t.peersCpuS, 0) / wallS
      })
    }

    // profiles are written when the relays exit
    await stopAll([peers, ...relays.map((r) => r.child)])
    for (const r of relays) {
      if (r.profDir == null) continue
      const fresh = readdirSync(r.profDir).filter((f) => f.endsWith('.cpuprofile') && !r.profilesBefore.includes(f))
      const res = results.find((x) => x.label === relayKinds[r.kind].label)
      if (fresh.length === 0 || res?.relay == null) { log(`${r.kind}: no CPU profile written in ${r.profDir}`); continue }
      const file = join(r.profDir, fresh[0]!)
      res.relay.profile = summariseProfile(file)
      log(`${relayKinds[r.kind].label}: CPU profile ${file}`)
    }
    return results
  } finally {
    await stopAll([peers, ...relays.map((r) => r.child)])
  }
}

/** Row 5: fresh client nodes, one after another, reserving on a fresh relay. */
async function reservePath (kind: RelayKind): Promise<ReserveResult> {
  const { script, label } = relayKinds[kind]
  let relay: Child | undefined
  let peers: Child | undefined
  try {
    relay = await spawnChild(benchScript(script), {
      name: kind,
      env: { BENCH_PLAIN_MAX_RESERVATIONS: String(config.reservations + 16) }
    })
    peers = await spawnChild(benchScript('peers-process.ts'), { name: 'peers' })
    const samples: number[] = await peers.call('reserveLatency', { relay: relay.info.addrs[0], n: config.reservations, spacingMs: 250 }, 30_000 + config.reservations * 10_000)
    const summary = summarize(samples)
    log(`time to reservation on ${label}: p50 ${summary.p50.toFixed(1)} ms, p99 ${summary.p99.toFixed(1)} ms (n=${summary.n})`)
    return { label, summary }
  } finally {
    await stopAll([peers, relay])
  }
}

/** Row 6: GET /api/p2p/relays with N registered relays. */
async function discoveryPath (store: 'redis' | 'memory'): Promise<DiscoveryResult> {
  let redis: { url: string, stop: () => Promise<void> } | undefined
  let server: Child | undefined
  try {
    const args = [store, String(config.discoveryRelays)]
    if (store === 'redis') {
      const { startRedis } = await import('@pos-relay/testing')
      redis = await startRedis()
      args.push(redis.url)
    }
    server = await spawnChild(benchScript('discovery-process.ts'), { name: `discovery-${store}`, args, readyTimeoutMs: 120_000 })
    const url = `${server.info.url}/api/p2p/relays`
    const first = await fetch(url, { signal: AbortSignal.timeout(10_000) })
    const list = await first.json() as unknown[]
    if (first.status !== 200 || !Array.isArray(list) || list.length !== config.discoveryRelays) {
      throw new Error(`GET ${url}: status ${first.status}, ${Array.isArray(list) ? list.length : 'no'} relays, expected ${config.discoveryRelays}`)
    }
    const get = async (): Promise<number> => {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
      const body = await res.arrayBuffer()
      if (res.status !== 200) throw new Error(`GET ${url}: status ${res.status}`)
      return body.byteLength
    }
    for (let i = 0; i < 20; i++) await get() // warm-up: JIT, keep-alive connection
    const samples: number[] = []
    let responseBytes = 0
    const t0 = performance.now()
    for (let i = 0; i < config.gets; i++) {
      const t = performance.now()
      responseBytes = await get()
      samples.push(performance.now() - t)
    }
    const wallS = (performance.now() - t0) / 1000
    const summary = summarize(samples)
    log(`discovery (${store}, ${config.discoveryRelays} relays): p50 ${summary.p50.toFixed(2)} ms, p99 ${summary.p99.toFixed(2)} ms, ${(responseBytes / 1024).toFixed(0)} KiB per response`)
    return { store, relays: config.discoveryRelays, summary, responseBytes, reqPerSec: config.gets / wallS }
  } finally {
    await stopAll([server])
    await redis?.stop()
  }
}

async function main (): Promise<void> {
  const started = performance.now()
  const machine = machineInfo()
  log(`${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; ${config.mib} MiB transfers, parts: ${[...config.parts].join(', ')}`)
  const results: BenchResults = {
    machine,
    config,
    layout: 'each relay in its own process; dialer and listener together in one more process (the listener holds a reservation on each relay); the bench driver in a third (idle while measuring); transfers interleaved round by round, the order rotating',
    loadavg: { start: loadavg() },
    paths: [],
    reserve: [],
    discovery: [],
    errors: [],
    durationS: 0
  }
  // One part failing must not lose the others: record the error and go on.
  const tryPart = attempter(results.errors, log)
  const attempt = async <T>(name: string, fn: () => Promise<T>, sink: T[]): Promise<void> => { await tryPart(name, async () => { sink.push(await fn()) }) }
  if (config.parts.has('relay') || config.parts.has('plain') || config.parts.has('direct')) {
    const sink: PathResult[][] = []
    await attempt('transfers', transferPaths, sink)
    results.paths.push(...(sink[0] ?? []))
    results.loadavg['after transfers'] = loadavg()
  }
  if (config.parts.has('reserve')) {
    await attempt('time to reservation (pos-relay)', () => reservePath('pos-relay'), results.reserve)
    await attempt('time to reservation (plain)', () => reservePath('plain'), results.reserve)
  }
  if (config.parts.has('discovery')) {
    await attempt('discovery (redis)', () => discoveryPath('redis'), results.discovery)
    await attempt('discovery (memory)', () => discoveryPath('memory'), results.discovery)
  }
  results.loadavg.end = loadavg()
  results.durationS = (performance.now() - started) / 1000

  const report = renderReport(results)
  process.stdout.write(report)
  log(writeSection(config.out, runSection(results, report)))
  if (config.json !== '') {
    writeFileSync(config.json, JSON.stringify(results, (_k, v) => v instanceof Set ? [...v] : v, 2) + '\n')
    log(`wrote ${config.json}`)
  }
  if (results.errors.length > 0) process.exitCode = 1
}

await runScript('bench', { deadlineS: config.deadlineS, cleanup: killAllChildren, log }, main)
