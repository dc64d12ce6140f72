import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { jsonLines, waitForValue } from './poll.ts'
import { startProcess, type Process } from './processes.ts'
import { readCpuSeconds } from './proc.ts'

/** a relay under test: its multiaddr, its process (CPU read from /proc) and a name for errors */
export interface MeasuredRelay { name: string, addr: string, proc: Process }

export interface RustTransfer { mibPerS: number, relayCpuS: number, ms: number }

/**
 * One rust-libp2p listener (e2e/interop/rust-peer) reserves on `relay`, one
 * rust-libp2p dialer sends `mib` MiB to it through the relay, DCUtR off, a
 * fresh pair and circuit each time; the relay's CPU seconds over the
 * transfer. Rejects when the transfer fails or stalls (60 s).
 */
export async function rustRelayedTransfer (relay: MeasuredRelay, rustPeer: string, mib: number): Promise<RustTransfer> {
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-rust-pair-'))
  const ready = join(dir, 'ready.json')
  const common = ['--relay', relay.addr, '--no-dcutr', '--timeout-ms', '60000', '--listen', '/ip4/127.0.0.1/tcp/0']
  const listener = startProcess(rustPeer, [...common, '--mode', 'listen', '--ready-file', ready], { timeoutMs: 70_000 })
  try {
    const info = await waitForValue('listener reservation', () => { try { return JSON.parse(readFileSync(ready, 'utf8')) } catch { return undefined } }, 30_000)
      .catch((err: Error) => { throw new Error(`${err.message}; listener: ${listener.stdout.slice(-3).join(' | ')} ${listener.stderr.slice(-3).join(' | ')}; relay: ${relay.proc.stderr.slice(-3).join(' | ')}`) })
    const cpu0 = readCpuSeconds(relay.proc.pid)
    const dialer = startProcess(rustPeer, [...common, '--mode', 'dial', '--peer', info.peer_id, '--payload-bytes', String(mib << 20)], { timeoutMs: 70_000 })
    await dialer.exited
    const relayCpuS = readCpuSeconds(relay.proc.pid) - cpu0
    const res = jsonLines(dialer.stdout).find((o) => o.impl === 'rust')
    if (res?.ok !== true || res.connection !== 'relayed') throw new Error(`${relay.name}: transfer failed: ${res?.error ?? dialer.stderr.slice(-3).join(' | ')}`)
    const ms = Number(res.transfer_ms)
    return { mibPerS: mib / (ms / 1000), relayCpuS, ms }
  } finally {
    await listener.stop('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}

/** e2e/interop/build.sh: builds (or reuses, from ~/.cache/pos-relay) the interop peers and relays; their paths by name */
export async function interopBinaries<Bins> (): Promise<Bins> {
  process.stderr.write('building / reusing interop binaries (e2e/interop/build.sh) ...\n')
  const { stdout } = await promisify(execFile)('bash', [fileURLToPath(new URL('../../../e2e/interop/build.sh', import.meta.url))], { maxBuffer: 16 << 20, timeout: 60 * 60_000 })
  return JSON.parse(stdout.trim().split('\n').pop()!) as Bins
}
