/**
 * QUIC vs TCP through our relay: rust-libp2p peers (e2e/interop/rust-peer,
 * built and cached by e2e/interop/build.sh) relay a payload through one
 * `pos-relay run` on 127.0.0.1, alternately over TCP (Noise + Yamux to the
 * relay) and over QUIC (the relay's UDP port), a fresh pair and circuit per
 * transfer, DCUtR off.
 *
 *   npx tsc -b && npx node bench/src/quic-vs-tcp.ts      (writes its section of docs/benchmarks.md)
 *
 * Per transport: transfers intact / attempted (a failed transfer is counted
 * and its error kept, not retried: large rust-libp2p transfers over TCP are a
 * known problem, see README), throughput of the intact ones, and the relay's
 * CPU seconds per GiB relayed (utime + stime from /proc).
 *
 * Env: BENCH_MIB (256), BENCH_ROUNDS (6). Bounded: every child has a timeout
 * and all are killed at the end, on error and on Ctrl-C.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { freePort } from '@pos-relay/testing'
import { jsonLines, waitForValue } from './lib/poll.ts'
import { killAllProcesses, startProcess } from './lib/processes.ts'
import { machineInfo } from './lib/machine.ts'
import { readCpuSeconds } from './lib/proc.ts'
import { BENCH_DOC, writeSection } from './lib/report.ts'

const run = promisify(execFile)
const REPO = fileURLToPath(new URL('../../', import.meta.url))
const CLI = join(REPO, 'packages/cli/bin/pos-relay.js')
const MIB = positive('BENCH_MIB', 256)
const ROUNDS = positive('BENCH_ROUNDS', 6)
type Transport = 'tcp' | 'quic'
const TRANSPORTS: Transport[] = ['tcp', 'quic']

function positive (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw == null || raw === '') return fallback
  if (!/^\d+$/.test(raw) || Number(raw) === 0) throw new Error(`${name} must be a positive integer, got "${raw}"`)
  return Number(raw)
}

interface Result { transport: Transport, ok: boolean, mibPerS?: number, relayCpuS?: number, error?: string }

async function transfer (transport: Transport, relayAddrs: Record<Transport, string>, relayPid: number, rustPeer: string): Promise<Result> {
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-quic-bench-'))
  const ready = join(dir, 'ready.json')
  const listen = transport === 'quic' ? '/ip4/127.0.0.1/udp/0/quic-v1' : '/ip4/127.0.0.1/tcp/0'
  const common = ['--transport', transport, '--relay', relayAddrs[transport], '--listen', listen, '--no-dcutr', '--timeout-ms', '120000']
  const listener = startProcess(rustPeer, [...common, '--mode', 'listen', '--ready-file', ready], { timeoutMs: 130_000 })
  try {
    const info = await waitForValue('listener reservation', () => { try { return JSON.parse(readFileSync(ready, 'utf8')) } catch { return undefined } }, 30_000)
    const cpu0 = readCpuSeconds(relayPid)
    const dialer = startProcess(rustPeer, [...common, '--mode', 'dial', '--peer', info.peer_id, '--payload-bytes', String(MIB * 2 ** 20)], { timeoutMs: 130_000 })
    await dialer.exited
    const cpu = readCpuSeconds(relayPid) - cpu0
    const res = jsonLines(dialer.stdout).find((o) => o.impl === 'rust')
    if (res?.ok !== true || res.connection !== 'relayed') return { transport, ok: false, error: String(res?.error ?? dialer.stderr.slice(-2).join(' | ')) }
    return { transport, ok: true, mibPerS: MIB / (Number(res.transfer_ms) / 1000), relayCpuS: cpu }
  } finally {
    listener.child.kill('SIGKILL')
    await listener.exited
    await rm(dir, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  const { stdout } = await run('bash', [join(REPO, 'e2e/interop/build.sh'), 'rust-peer'], { maxBuffer: 16 << 20, timeout: 60 * 60_000 })
  const rustPeer: string = JSON.parse(stdout.trim().split('\n').pop()!)['rust-peer']
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-quic-bench-relay-'))
  const config = join(dir, 'relay.json')
  const port = await freePort()
  await run(process.execPath, [CLI, 'init', '--config', config, '--port', String(port)], { env: { ...process.env, P2P_SECRET: 'bench' } })
  const cfg = JSON.parse(await readFile(config, 'utf8'))
  Object.assign(cfg, { host: '127.0.0.1', metrics_host: '127.0.0.1', metrics_port: await freePort(), drain_seconds: 0 })
  await writeFile(config, JSON.stringify(cfg), { mode: 0o600 })
  const relay = startProcess(process.execPath, [CLI, 'run', '--config', config], { timeoutMs: 60 * 60_000 })
  try {
    const readyLine = await waitForValue('relay_ready', () => jsonLines(relay.stdout).find((o) => o.event === 'relay_ready'), 30_000)
    const addrs = readyLine.addrs as string[]
    const relayAddrs: Record<Transport, string> = {
      tcp: addrs.find((a) => a.includes('/tcp/'))!,
      quic: addrs.find((a) => a.includes('/quic-v1/'))!
    }
    if (relayAddrs.quic == null) throw new Error(`the relay announced no QUIC address: ${addrs.join(' ')}`)
    const results: Result[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      // alternate which transport goes first, so neither always runs on a warmer relay
      for (const t of round % 2 === 1 ? TRANSPORTS : [...TRANSPORTS].reverse()) {
        const r = await transfer(t, relayAddrs, relay.pid, rustPeer)
        results.push(r)
        process.stderr.write(`# round ${round} ${t}: ${r.ok ? `${r.mibPerS!.toFixed(1)} MiB/s, relay ${(r.relayCpuS! / (MIB / 1024)).toFixed(1)} CPU s/GiB` : `FAILED ${r.error}`}\n`)
      }
    }
    const body = report(results)
    process.stdout.write(body)
    const summary = TRANSPORTS.map((t) => {
      const mine = results.filter((r) => r.transport === t)
      const ok = mine.filter((r) => r.ok)
      const med = (xs: number[]): string => xs.length === 0 ? '–' : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1)
      return `${t === 'tcp' ? 'TCP' : 'QUIC'} ${ok.length}/${mine.length} intact, ${med(ok.map((r) => r.mibPerS!))} MiB/s, ${med(ok.map((r) => r.relayCpuS! / (MIB / 1024)))} relay CPU s/GiB`
    })
    process.stderr.write(writeSection(process.env.BENCH_OUT ?? BENCH_DOC, {
      id: 'quic',
      title: 'QUIC vs TCP through pos-relay',
      date: machineInfo().date.slice(0, 10),
      headline: `rust-libp2p peers, ${MIB} MiB per transfer: ${summary.join('; ')}`,
      command: 'npx node bench/src/quic-vs-tcp.ts',
      body
    }) + '\n')
  } finally {
    relay.child.kill('SIGINT')
    await relay.exited
    await rm(dir, { recursive: true, force: true })
  }
}

function report (results: Result[]): string {
  const m = machineInfo()
  const lines = [
    '## QUIC vs TCP through pos-relay',
    '',
    `Generated by \`npx node bench/src/quic-vs-tcp.ts\` on ${m.date}: rust-libp2p peers (\`e2e/interop/rust-peer\`) relay ${MIB} MiB through one \`pos-relay run\` on 127.0.0.1, ` +
      `${ROUNDS} rounds, TCP and QUIC alternating, a fresh pair and circuit per transfer, DCUtR off. Everything runs on the same ${m.cores}-core machine (${m.cpu}), ` +
      'which other jobs may share: compare the two columns of one run, not runs with each other.',
    '',
    '| transport to the relay | intact / attempted | MiB/s (min / median / max of intact) | relay CPU s per GiB (median) | errors |',
    '|---|---|---|---|---|'
  ]
  for (const t of TRANSPORTS) {
    const mine = results.filter((r) => r.transport === t)
    const ok = mine.filter((r) => r.ok)
    const rates = ok.map((r) => r.mibPerS!).sort((a, b) => a - b)
    const cpu = ok.map((r) => r.relayCpuS! / (MIB / 1024)).sort((a, b) => a - b)
    const med = (xs: number[]): string => xs.length === 0 ? '–' : xs[Math.floor(xs.length / 2)]!.toFixed(1)
    const errors = [...new Set(mine.filter((r) => !r.ok).map((r) => r.error))].map((e) => `\`${String(e).slice(0, 80)}\``).join(', ')
    lines.push(`| ${t === 'tcp' ? 'TCP (Noise, Yamux)' : 'QUIC (UDP)'} | ${ok.length} / ${mine.length} | ${rates.length > 0 ? `${rates[0]!.toFixed(1)} / ${med(rates)} / ${rates[rates.length - 1]!.toFixed(1)}` : '–'} | ${med(cpu)} | ${errors || 'none'} |`)
  }
  lines.push('', `Versions: Node ${m.node}, libp2p ${m.packages.libp2p ?? '?'}, @chainsafe/libp2p-quic ${pkgVersion('@chainsafe/libp2p-quic')}; rust-libp2p from \`e2e/interop/rust-peer/Cargo.lock\`.`, '')
  lines.push('Over QUIC the relay\'s side of each hop is quinn (native) rather than js Noise + Yamux, which is where most of the relay\'s CPU goes over TCP (see the CPU profile in the relays section).', '')
  return lines.join('\n')
}

function pkgVersion (name: string): string {
  try { return JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')).version } catch { return '?' }
}

main().catch((err) => { process.stderr.write(`quic-vs-tcp: ${err.stack ?? err}\n`); killAllProcesses(); process.exit(1) })
