/**
 * Processes of the NAT lab: the peers' binaries (built by e2e/interop/build.sh),
 * our relay and discovery in the relay namespace, and one dialer/listener run.
 */
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { pollUntil, spawnLines } from '@pos-relay/testing'
import { ADDR, INTERNET_CIDR, NS } from './topology.ts'

const run = promisify(execFile)
export const REPO = fileURLToPath(new URL('../../../', import.meta.url))
export const CLI = join(REPO, 'packages/cli/bin/pos-relay.js')
export const JS_PEER = join(REPO, 'e2e/interop/js-peer/peer.ts')
export const RELAY_PORT = 7373
export const DISCOVERY_PORT = 8080
export const METRICS_PORT = 9373

/**
 * A peer kind of the matrix: an implementation and the transport it reaches
 * the relay (and listens) with. `rust-quic` is the rust peer with
 * `--transport quic`: QUIC to the relay's UDP port, a QUIC listener for hole
 * punching. The others use TCP (the js SDK and the go peer have no QUIC).
 */
export type Impl = 'js' | 'rust' | 'go' | 'rust-quic'
export const IMPLS: Impl[] = ['js', 'rust', 'go', 'rust-quic']
export const transportOf = (impl: Impl): 'tcp' | 'quic' => impl === 'rust-quic' ? 'quic' : 'tcp'

export interface Binaries { 'rust-peer': string, 'rust-relay': string, 'go-peer': string, 'go-relay': string }

/** Builds (or reuses from the cache) the rust and go binaries. */
export async function ensureBinaries (): Promise<Binaries> {
  const started = Date.now()
  const { stdout, stderr } = await run('bash', [join(REPO, 'e2e/interop/build.sh')], { maxBuffer: 64 << 20, timeout: 60 * 60_000 })
  if (process.env.NAT_VERBOSE != null) process.stderr.write(stderr)
  const line = stdout.trim().split('\n').pop()!
  const bins = JSON.parse(line) as Binaries
  process.stderr.write(`# interop binaries ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  return bins
}

/** A process running inside a namespace, with its output collected. */
export interface NsProcess {
  child: ChildProcess
  stdout: string[]
  stderr: string[]
  exited: Promise<number | string>
  kill: (signal?: NodeJS.Signals) => Promise<number | string>
}

export function spawnIn (ns: string, cmd: string, args: string[], opts: { env?: Record<string, string>, label?: string, timeoutMs?: number } = {}): NsProcess {
  // `ip netns exec` execs the command, so the child's pid is the command's
  const p = spawnLines('ip', ['netns', 'exec', ns, cmd, ...args], {
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', POS_RELAY_LOG_LEVEL: process.env.POS_RELAY_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info', ...opts.env },
    label: opts.label ?? cmd,
    echo: process.env.NAT_VERBOSE != null,
    ...(opts.timeoutMs != null ? { timeoutMs: opts.timeoutMs } : {})
  })
  return { ...p, kill: async (signal = 'SIGTERM') => await p.kill(signal, 5000) }
}

/** pollUntil, positional as the lab's callers use it */
export async function waitFor<T> (what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs = 50): Promise<T> {
  return await pollUntil(what, fn, { timeoutMs, intervalMs })
}

/** HTTP GET from inside a namespace (the root namespace has no route to the lab). */
export async function fetchIn (ns: string, url: string): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', ns, process.execPath, '-e',
    `fetch(${JSON.stringify(url)}).then(async r => { if (!r.ok) process.exit(2); process.stdout.write(await r.text()) }).catch(() => process.exit(1))`], { timeout: 10_000, maxBuffer: 16 << 20 })
  return stdout
}

export interface RelayStack {
  relayAddr: string
  /** the relay's QUIC address (UDP 7373), announced as the twin of the TCP one */
  relayQuicAddr: string
  relayPeerId: string
  discoveryUrl: string
  relay: NsProcess
  discovery: NsProcess
  /** pos_relay_relayed_bytes_total summed over directions */
  relayedBytes: () => Promise<number>
  stop: () => Promise<void>
}

/** Our discovery API (in-memory) and `pos-relay run` in the relay namespace, the relay registered with discovery. */
export async function startRelayStack (): Promise<RelayStack> {
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-nat-'))
  const secret = 'nat-lab-secret'
  const config = join(dir, 'relay.json')
  const discoveryUrl = `http://${ADDR.relay}:${DISCOVERY_PORT}`
  await run(process.execPath, [CLI, 'init', '--config', config, '--api-url', `http://127.0.0.1:${DISCOVERY_PORT}`, '--port', String(RELAY_PORT)], {
    env: { ...process.env, P2P_SECRET: secret }
  })
  const cfg = JSON.parse(await readFile(config, 'utf8'))
  Object.assign(cfg, {
    host: '0.0.0.0',
    announce: [`/ip4/${ADDR.relay}/tcp/${RELAY_PORT}`],
    metrics_host: '127.0.0.1',
    metrics_port: METRICS_PORT,
    drain_seconds: 0
  })
  await writeFile(config, JSON.stringify(cfg, null, 2), { mode: 0o600 })
  const discovery = spawnIn(NS.relay, process.execPath, [CLI, 'discovery', '--host', '0.0.0.0', '--port', String(DISCOVERY_PORT), '--ttl', '30'], { env: { P2P_SECRET: secret }, label: 'discovery' })
  const relay = spawnIn(NS.relay, process.execPath, [CLI, 'run', '--config', config], { label: 'relay' })
  const stop = async (): Promise<void> => {
    await relay.kill('SIGINT')
    await discovery.kill('SIGTERM')
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const listening = await waitFor('relay listening', () => relay.stderr.map((l) => { try { return JSON.parse(l) } catch { return undefined } })
      .find((o) => o?.msg === 'relay listening'), 30_000)
    const relayPeerId: string = listening.peer_id ?? listening.peerId
    if (relayPeerId == null) throw new Error(`relay log has no peer id: ${JSON.stringify(listening)}`)
    await waitFor('relay registered with discovery', async () => {
      try {
        const list = JSON.parse(await fetchIn(NS.relay, `http://127.0.0.1:${DISCOVERY_PORT}/api/p2p/relays`))
        return list.some((r: any) => r.peer_id === relayPeerId) ? true : undefined
      } catch { return undefined }
    }, 30_000, 200)
    const relayQuicAddr = `/ip4/${ADDR.relay}/udp/${RELAY_PORT}/quic-v1/p2p/${relayPeerId}`
    // the relay must register its QUIC address: the SDK peers and any other
    // client learn it from discovery, not from this lab
    const registered = JSON.parse(await fetchIn(NS.relay, `http://127.0.0.1:${DISCOVERY_PORT}/api/p2p/relays`)).find((r: any) => r.peer_id === relayPeerId)
    if (!registered.addrs.includes(relayQuicAddr)) throw new Error(`relay registered ${JSON.stringify(registered.addrs)}, without ${relayQuicAddr}`)
    return {
      relayAddr: `/ip4/${ADDR.relay}/tcp/${RELAY_PORT}/p2p/${relayPeerId}`,
      relayQuicAddr,
      relayPeerId,
      discoveryUrl,
      relay,
      discovery,
      async relayedBytes () {
        let text: string
        try {
          text = await fetchIn(NS.relay, `http://127.0.0.1:${METRICS_PORT}/metrics`)
        } catch (err: any) {
          // most likely the relay is gone: say how it ended, not just that a fetch failed
          const exit = relay.child.exitCode ?? relay.child.signalCode ?? 'still running'
          throw new Error(`relay metrics unreachable (${String(err.message).split('\n')[0]}); relay process: ${exit}; relay stderr:\n${relay.stderr.slice(-30).join('\n')}`)
        }
        let sum = 0
        for (const line of text.split('\n')) {
          if (line.startsWith('pos_relay_relayed_bytes_total')) sum += Number(line.split(' ').pop())
        }
        return sum
      },
      stop
    }
  } catch (err) {
    process.stderr.write(`relay stderr:\n${relay.stderr.slice(-20).join('\n')}\ndiscovery stderr:\n${discovery.stderr.slice(-10).join('\n')}\n`)
    await stop()
    throw err
  }
}

export interface PeerResult {
  impl: Impl
  role: 'dialer' | 'listener'
  ok: boolean
  connection?: 'relayed' | 'direct'
  remote_addr?: string
  sha256?: string
  bytes?: number
  upgraded_after_ms?: number | null
  elapsed_ms?: number
  error?: string
  [k: string]: unknown
}

export interface PairResult {
  dialer: PeerResult
  listener: PeerResult
  /** bytes the relay counted between the listener's reservation and both peers' exit */
  relayDelta: number
  wallMs: number
  dialerStderr: string[]
  listenerStderr: string[]
}

export interface PairOptions {
  payloadBytes: number
  marker?: string
  directTimeoutMs?: number
  noDcutr?: boolean
  timeoutMs?: number
}

function peerCommand (impl: Impl, bins: Binaries, stack: RelayStack): { cmd: string, args: string[] } {
  switch (impl) {
    case 'js': return { cmd: process.execPath, args: [JS_PEER, '--discovery', stack.discoveryUrl] }
    case 'rust': return { cmd: bins['rust-peer'], args: [] }
    case 'rust-quic': return { cmd: bins['rust-peer'], args: ['--transport', 'quic'] }
    // go only hole punches from addresses manet.IsPublicAddr accepts: see topology.ts / README
    case 'go': return { cmd: bins['go-peer'], args: ['--public-cidr', INTERNET_CIDR] }
  }
}

function parseResult (impl: Impl, role: 'dialer' | 'listener', p: NsProcess, code: number | string): PeerResult {
  const lines = p.stdout.map((l) => { try { return JSON.parse(l) } catch { return undefined } }).filter((o) => o?.impl != null)
  if (lines.length === 1) return lines[0]
  return { impl, role, ok: false, error: `exit ${code}, ${lines.length} result lines; stderr: ${p.stderr.slice(-8).join(' | ')}` }
}

/** Runs one listener (LAN B) and one dialer (LAN A) through our relay. */
export async function runPair (dialer: Impl, listener: Impl, bins: Binaries, stack: RelayStack, opts: PairOptions): Promise<PairResult> {
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-pair-'))
  const ready = join(dir, 'ready.json')
  const timeoutMs = opts.timeoutMs ?? 45_000
  const common = (impl: Impl): string[] => ['--relay', transportOf(impl) === 'quic' ? stack.relayQuicAddr : stack.relayAddr, '--timeout-ms', String(timeoutMs)]
  const started = Date.now()
  const l = peerCommand(listener, bins, stack)
  const lp = spawnIn(NS.lanB, l.cmd, [...l.args, ...common(listener), '--mode', 'listen', '--ready-file', ready, ...(opts.noDcutr === true ? ['--no-dcutr'] : [])],
    { label: `${listener}-listener`, timeoutMs: timeoutMs + 10_000 })
  try {
    const info = await waitFor('listener reservation', async () => {
      try { return JSON.parse(await readFile(ready, 'utf8')) } catch { return undefined }
    }, 30_000).catch(async (err) => {
      await lp.kill('SIGKILL')
      throw new Error(`${listener} listener: ${err.message}; stdout: ${lp.stdout.join(' ')} stderr: ${lp.stderr.slice(-10).join(' | ')}`)
    })
    const before = await stack.relayedBytes()
    const d = peerCommand(dialer, bins, stack)
    const dp = spawnIn(NS.lanA, d.cmd, [...d.args, ...common(dialer), '--mode', 'dial', '--peer', info.peer_id,
      '--payload-bytes', String(opts.payloadBytes), '--direct-timeout-ms', String(opts.directTimeoutMs ?? 10_000),
      ...(opts.marker != null ? ['--marker', opts.marker] : []), ...(opts.noDcutr === true ? ['--no-dcutr'] : [])],
    { label: `${dialer}-dialer`, timeoutMs: timeoutMs + 10_000 })
    const dcode = await dp.exited
    // the listener exits ~1 s after replying; if the dialer failed it may wait for its timeout
    const lcode = await Promise.race([lp.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 5000))])
    if (lcode === 'still running') await lp.kill('SIGKILL')
    const after = await stack.relayedBytes()
    return {
      dialer: parseResult(dialer, 'dialer', dp, dcode),
      listener: parseResult(listener, 'listener', lp, lcode),
      relayDelta: after - before,
      wallMs: Date.now() - started,
      dialerStderr: dp.stderr,
      listenerStderr: lp.stderr
    }
  } finally {
    await lp.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
}
