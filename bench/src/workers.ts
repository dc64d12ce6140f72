/**
 * Relay CPU per GiB of a circuit between two workers (`pos-relay run
 * --workers 2`: the dialer's connection on one worker, the listener's
 * reservation on the other, bytes through the workers' unix socket) against
 * a circuit within one worker, and against the single-process relay.
 *
 * The relay's processes (primary and workers, all threads) are pinned to
 * core 0 with `taskset`, this process (the js-libp2p peers) to core 1.
 * CPU: utime + stime from /proc/<pid>/stat of the primary and every worker,
 * summed, over each transfer. Each transfer has a fresh dialer (a new TCP
 * connection, which the primary hands to the next worker); which kind of
 * circuit it made is read from pos_relay_cross_worker_circuits_total.
 *
 *   npx node bench/src/workers.ts      (WORKERS_BENCH_MIB, default 256; WORKERS_BENCH_EACH, default 3)
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { killAllRelays, metricValue, runCli, startCliServer, type CliServer } from './lib/cli.ts'
import { loadavg, machineInfo } from './lib/machine.ts'
import { readCpuSeconds } from './lib/proc.ts'
import { BENCH_DOC, benchSection, f, machineTable, mdTable, writeSection } from './lib/report.ts'
import { handleSink, transfer } from './lib/transfer.ts'

const MIB = Number(process.env.WORKERS_BENCH_MIB ?? 256)
const EACH = Number(process.env.WORKERS_BENCH_EACH ?? 3)
const MAX_TRIES = EACH * 5

const node = async (listen: string[] = []): Promise<Libp2p> => await createLibp2p({
  addresses: { listen },
  transports: [tcp(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
})

/** the process and its children (cluster workers), from /proc */
function processTree (pid: number): number[] {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((s) => s !== '').map(Number)
  return [pid, ...kids.flatMap(processTree)]
}

const pin = (pid: number, core: number): void => { execFileSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' }) }

interface Sample { kind: 'cross-worker' | 'same-worker' | 'single process', cpuS: number, primaryCpuS: number, mibPerS: number }

async function measure (relay: CliServer, workers: boolean, samples: Sample[], failures: string[]): Promise<void> {
  const pids = processTree(relay.pid)
  for (const pid of pids) pin(pid, 0)
  const relayAddr = relay.ready.addrs.find((a: string) => a.includes('/tcp/'))
  const listener = await node([`${relayAddr}/p2p-circuit`])
  await handleSink(listener)
  while (!listener.getMultiaddrs().some((ma) => ma.toString().includes('/p2p-circuit'))) await new Promise((resolve) => setTimeout(resolve, 50))
  const target = multiaddr(`${relayAddr}/p2p-circuit/p2p/${listener.peerId.toString()}`)
  const metrics = async (): Promise<string> => await (await fetch(`http://127.0.0.1:${relay.ready.metrics_port}/metrics`)).text()
  const count = (kind: Sample['kind']): number => samples.filter((s) => s.kind === kind).length
  try {
    for (let i = 0; i < (workers ? MAX_TRIES : EACH); i++) {
      if (workers && count('cross-worker') >= EACH && count('same-worker') >= EACH) break
      const dialer = await node()
      const cross0 = workers ? metricValue(await metrics(), 'pos_relay_cross_worker_circuits_total', 'side="dialer"') : 0
      const cpu0 = pids.map(readCpuSeconds)
      const r = await transfer(dialer, target, MIB * 1024 * 1024, { chunkBytes: 64 * 1024, timeoutMs: 600_000 }).catch((err: Error) => err)
      const cpu1 = pids.map(readCpuSeconds)
      await dialer.stop()
      const kind = !workers ? 'single process' : metricValue(await metrics(), 'pos_relay_cross_worker_circuits_total', 'side="dialer"') > cross0 ? 'cross-worker' : 'same-worker'
      if (r instanceof Error) { failures.push(`${kind}: ${r.message}`); process.stderr.write(`${kind}: FAILED ${r.message}\n`); continue }
      if (workers && count(kind) >= EACH) continue
      const cpuS = cpu1.reduce((s, c, j) => s + c - cpu0[j]!, 0)
      samples.push({ kind, cpuS, primaryCpuS: cpu1[0]! - cpu0[0]!, mibPerS: r.mibPerSec })
      process.stderr.write(`${kind}: ${f(r.mibPerSec)} MiB/s, relay CPU ${f(cpuS, 2)} s (primary ${f(cpu1[0]! - cpu0[0]!, 3)} s)\n`)
    }
  } finally {
    await listener.stop()
  }
}

async function main (): Promise<void> {
  pin(process.pid, 1)
  const loadBefore = loadavg()
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-bench-workers-'))
  const samples: Sample[] = []
  const errors: string[] = []
  try {
    const config = join(dir, 'config.json')
    await runCli(['init', '--config', config], { POS_RELAY_P2P_SECRET: 'bench' })
    const common = ['run', '--config', config, '--port', '0', '--host', '127.0.0.1', '--metrics-port', '0', '--metrics-host', '127.0.0.1', '--no-quic', '--circuit-data-limit', '0', '--circuit-duration', '0', '--log-level', process.env.WORKERS_BENCH_LOG_LEVEL ?? 'warn']
    for (const workers of [true, false]) {
      const relay = await startCliServer(workers ? 'relay --workers 2' : 'relay', [...common, ...(workers ? ['--workers', '2'] : [])], 'relay_ready', { env: { POS_RELAY_P2P_SECRET: 'bench' } })
      try { await measure(relay, workers, samples, errors) } catch (err: any) { errors.push(`${relay.name}: ${err.message}`) } finally { await relay.stop() }
    }
  } finally {
    killAllRelays()
    await rm(dir, { recursive: true, force: true })
  }
  const m = machineInfo()
  const perGiB = (kind: Sample['kind']): number => { const s = samples.filter((x) => x.kind === kind); return s.reduce((a, x) => a + x.cpuS, 0) / (s.length * MIB / 1024) }
  const kinds: Array<Sample['kind']> = ['single process', 'same-worker', 'cross-worker']
  const rows = kinds.map((k) => {
    const s = samples.filter((x) => x.kind === k)
    const tp = s.map((x) => x.mibPerS).sort((a, b) => a - b)
    return [k, s.length, f(perGiB(k), 2), f(s.reduce((a, x) => a + x.primaryCpuS, 0) / (s.length * MIB / 1024), 3), s.length > 0 ? `${f(tp[Math.floor(tp.length / 2)]!)} (${f(tp[0]!)}–${f(tp[tp.length - 1]!)})` : 'n/a']
  })
  const extra = perGiB('cross-worker') - perGiB('same-worker')
  const body = [
    ...machineTable(m, { coresNote: 'relay pinned to core 0 (taskset -a), peers and bench driver to core 1; other processes of the machine are not pinned away', noRedis: true, loadavg: { before: loadBefore, after: loadavg() } }),
    '',
    ...mdTable(['circuit', 'transfers', 'relay CPU s per GiB (primary + workers)', 'of which the primary (single process: the relay)', 'MiB/s (median; min–max)'], rows),
    '',
    `Method: ${MIB} MiB per transfer, one js-libp2p listener reserving on the relay and a fresh js-libp2p dialer per transfer (a new TCP connection: the primary hands connections to the workers in turn), payload through \`/p2p-circuit\`, the listener's byte count checked. Relay flags: \`--no-quic --circuit-data-limit 0 --circuit-duration 0\`, plus \`--workers 2\` for the worker rows. A circuit is cross-worker when \`pos_relay_cross_worker_circuits_total{side="dialer"}\` grew during it. CPU: utime + stime of the primary and both workers (/proc), summed. A cross-worker circuit costs the extra unix-socket hop in both workers (a write and a read per chunk each way), not a second Noise or yamux layer: the relay never decrypts the peers' inner Noise. With the load average above 2 (other jobs on the machine) single transfers vary by ±30 %: compare the rows of one run, not across runs.`,
    '',
    `**Model, not a measurement** (this machine has 2 cores, one of them the peers'): with W workers on W cores and connections spread evenly, a circuit is cross-worker with probability (W−1)/W, so relay CPU per GiB ≈ same + (W−1)/W × (cross − same) = ${f(perGiB('same-worker'), 2)} + (W−1)/W × ${f(extra, 2)} s/GiB, and throughput scales with W until the primary's per-connection accept work or the NIC binds; the primary relays no byte.`,
    ...(errors.length > 0 ? ['', '### Errors (failed transfers are not in the table; the loop goes on)', '', ...errors.map((e) => `- ${e}`)] : [])
  ].join('\n')
  const parts = samples.length > 0 ? [`relay CPU per GiB: same-worker ${f(perGiB('same-worker'), 2)} s, cross-worker ${f(perGiB('cross-worker'), 2)} s (${extra >= 0 ? '+' : ''}${f(extra, 2)} s), single process ${f(perGiB('single process'), 2)} s${errors.length > 0 ? `; ${errors.length} failed transfer(s)` : ''}`] : []
  process.stderr.write(writeSection(process.env.BENCH_OUT ?? BENCH_DOC, benchSection({ id: 'workers', title: 'Relay workers: CPU per GiB of a cross-worker circuit', command: 'npx node bench/src/workers.ts', machine: m, parts, body })) + '\n')
}

await main()
process.exit(0)
