/**
 * The three relays the side-by-side benchmarks compare (ours, rust-libp2p's and
 * go-libp2p's Circuit Relay v2 servers from e2e/interop/), each started in its
 * own process on 127.0.0.1 with the limits a single-host benchmark needs.
 */
import { execFile, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { freePort, pollUntil } from '@pos-relay/testing'
import { peerIdOfKeypair } from '@pos-relay/relay'
import { jsonLines, waitForValue } from './poll.ts'
import { startProcess, type Process } from './processes.ts'

const run = promisify(execFile)
const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const CLI = join(REPO, 'packages/cli/bin/pos-relay.js')

export type RelayKind = 'pos-relay' | 'rust-libp2p' | 'go-libp2p'
export const KINDS: RelayKind[] = ['pos-relay', 'rust-libp2p', 'go-libp2p']

export interface Bins { 'rust-peer': string, 'rust-relay': string, 'go-peer': string, 'go-relay': string }

/** `metricsPort`: ours only (its /metrics and /readyz) */
export interface Relay { kind: RelayKind, addr: string, proc: Process, metricsPort?: number }

export async function startRelay (kind: RelayKind, bins: Bins, extraNodeArgs: string[] = [], maxReservations = 6000): Promise<Relay> {
  if (kind === 'pos-relay') {
    const dir = await mkdtemp(join(tmpdir(), 'pos-relay-cmp-'))
    const config = join(dir, 'relay.json')
    await run(process.execPath, [CLI, 'init', '--config', config, '--port', '0'], { env: { ...process.env, P2P_SECRET: 'bench' } })
    const cfg = JSON.parse(await readFile(config, 'utf8'))
    cfg.host = '127.0.0.1'
    cfg.metrics_host = '127.0.0.1'
    cfg.metrics_port = 0
    cfg.drain_seconds = 0
    // production defaults except what a single-host benchmark trips over:
    // thousands of reservations from one IP, at a high rate
    const set = (obj: any, key: string, value: number): void => { if (obj != null && key in obj) obj[key] = value }
    set(cfg.limits, 'max_reservations', maxReservations)
    set(cfg.limits, 'ip_max_connections', 0)
    set(cfg.limits, 'max_pending_connections', 1024)
    // not 0: relay.ts derives js-libp2p's per-host inboundConnectionThreshold as max(this, 1) × 10,
    // so "0 = off" still admits only 10 new connections per second from 127.0.0.1
    set(cfg.rate_limits, 'ip_connections_per_second', 1_000_000)
    set(cfg.rate_limits, 'peer_reservations_per_minute', 0)
    set(cfg.rate_limits, 'peer_circuits_per_minute', 0)
    const port = await freePort()
    const metricsPort = await freePort()
    cfg.port = port
    cfg.metrics_port = metricsPort
    await writeFile(config, JSON.stringify(cfg), { mode: 0o600 })
    // log level warn: info logs a line per connection, which would cost the relay CPU
    const proc = startProcess(process.execPath, [...extraNodeArgs, CLI, 'run', '--config', config], { timeoutMs: 30 * 60_000 })
    void proc.exited.then(async () => { await rm(dir, { recursive: true, force: true }) })
    await pollUntil('pos-relay /readyz', async () => await fetch(`http://127.0.0.1:${metricsPort}/readyz`).then((r) => r.ok, () => false), {
      timeoutMs: 30_000,
      intervalMs: 100,
      giveUp: () => proc.child.exitCode != null ? `pos-relay exited before it got ready: ${proc.stderr.slice(-10).join('\n')}` : undefined,
      describe: () => proc.stderr.slice(-10).join('\n')
    })
    return { kind, addr: `/ip4/127.0.0.1/tcp/${port}/p2p/${peerIdOfKeypair(cfg.keypair)}`, proc, metricsPort }
  }
  const bin = kind === 'rust-libp2p' ? bins['rust-relay'] : bins['go-relay']
  const proc = startProcess(bin, ['--listen', '/ip4/127.0.0.1/tcp/0', '--max-reservations', String(maxReservations)], { timeoutMs: 30 * 60_000 })
  const line = await waitForValue(`${kind} relay address`, () => jsonLines(proc.stdout).find((o) => o.role === 'relay'), 30_000)
  return { kind, addr: line.addrs[0], proc }
}

/**
 * `count` reservations on `relay` held by one `rust-peer --mode reserve-many` process (an identity,
 * TCP connection, Noise + Yamux session and reservation each). Resolves once all are held, with the
 * process that holds them (the caller stops it); rejects, the process stopped, when fewer are.
 */
export async function reserveMany (relay: Relay, bins: Bins, count: number): Promise<Process> {
  const holder = startProcess(bins['rust-peer'], ['--mode', 'reserve-many', '--relay', relay.addr, '--count', String(count), '--timeout-ms', '240000'], { timeoutMs: 15 * 60_000 })
  try {
    const line = await waitForValue(`${count} reservations on ${relay.kind}`, () => jsonLines(holder.stdout).find((o) => o.role === 'reserver'), 250_000)
    if (line.reserved !== count) throw new Error(`${relay.kind}: only ${line.reserved}/${count} reservations (${line.error})`)
    return holder
  } catch (err) {
    await holder.stop('SIGINT')
    throw err
  }
}

export function versions (): Record<RelayKind, string> {
  const lock = readFileSync(join(REPO, 'e2e/interop/rust-relay/Cargo.lock'), 'utf8')
  const crate = (name: string): string => lock.match(new RegExp(`name = "${name}"\\nversion = "([^"]+)"`))?.[1] ?? '?'
  const gomod = readFileSync(join(REPO, 'e2e/interop/go-relay/go.mod'), 'utf8')
  const pkg = (name: string): string => { try { return JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')).version } catch { return '?' } }
  return {
    'pos-relay': `pos-relay ${gitRev()} (js-libp2p ${pkg('libp2p')}, @libp2p/circuit-relay-v2 ${pkg('@libp2p/circuit-relay-v2')}, Node ${process.version})`,
    'rust-libp2p': `libp2p ${crate('libp2p')} (libp2p-relay ${crate('libp2p-relay')}, libp2p-yamux ${crate('libp2p-yamux')}, libp2p-noise ${crate('libp2p-noise')}), release build`,
    'go-libp2p': `go-libp2p ${gomod.match(/github\.com\/libp2p\/go-libp2p (v\S+)/)?.[1] ?? '?'}`
  }
}

let rev = ''
function gitRev (): string {
  if (rev === '') {
    try { rev = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim() } catch { rev = '?' }
  }
  return rev
}
