/**
 * Processes of the NAT lab: the peers' binaries (built by e2e/interop/build.sh),
 * our relay and discovery in the relay namespace, and one dialer/listener run.
 */
import { execFile, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
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

/** An HTTP POST with a JSON body from inside a namespace: the answer's status and text. */
async function postJsonIn (ns: string, url: string, headers: Record<string, string>, body: unknown): Promise<{ status: number, text: string }> {
  // headers (a bearer secret) travel in the environment, not on a command line others can list
  const script = 'fetch(process.argv[1], { method: "POST", headers: JSON.parse(process.env.POST_HEADERS), body: process.argv[2] })' +
    '.then(async r => { process.stdout.write(JSON.stringify({ status: r.status, text: await r.text() })) }).catch(() => process.exit(1))'
  const { stdout } = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', script, url, JSON.stringify(body)], {
    timeout: 10_000,
    maxBuffer: 1 << 20,
    env: { ...process.env, POST_HEADERS: JSON.stringify({ 'content-type': 'application/json', ...headers }) }
  })
  return JSON.parse(stdout)
}

/** The sum of a metric's samples whose line starts with `prefix` (a name, or a name and labels) in Prometheus text. */
export function sumSamples (text: string, prefix: string): number {
  let sum = 0
  for (const line of text.split('\n')) {
    const sample = line.startsWith(prefix + ' ') || (!prefix.endsWith('}') && line.startsWith(prefix + '{'))
    if (sample) sum += Number(line.split(' ').pop())
  }
  return sum
}

export interface RelayStack {
  relayAddr: string
  /** the relay's QUIC address (UDP 7373), announced as the twin of the TCP one */
  relayQuicAddr: string
  relayPeerId: string
  discoveryUrl: string
  relay: NsProcess
  discovery: NsProcess
  /** with accounts on: the API key of an account of the default tier `unlimited` */
  apiKey?: string
  /** pos_relay_relayed_bytes_total summed over directions */
  relayedBytes: () => Promise<number>
  /** the sum of the relay's samples of a metric (`name` or `name{labels}`) */
  relayMetric: (prefix: string) => Promise<number>
  stop: () => Promise<void>
}

export interface StackOptions {
  /**
   * Accounts on: Redis in the relay namespace, discovery with ticket keys and
   * an admin secret (issuing tickets), the relay with --auth (reservations and
   * circuits need a presented ticket) and one account, whose API key the stack returns.
   */
  accounts?: boolean
}

const REDIS_URL = 'redis://127.0.0.1:6379'

/** Our discovery API (in-memory, or on Redis with accounts) and `pos-relay run` in the relay namespace, the relay registered with discovery. */
export async function startRelayStack (opts: StackOptions = {}): Promise<RelayStack> {
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-nat-'))
  const secret = 'nat-lab-secret'
  const adminSecret = `nat-lab-admin-${randomUUID()}`
  const config = join(dir, 'relay.json')
  const discoveryUrl = `http://${ADDR.relay}:${DISCOVERY_PORT}`
  const localApi = `http://127.0.0.1:${DISCOVERY_PORT}`
  await run(process.execPath, [CLI, 'init', '--config', config, '--api-url', localApi, '--port', String(RELAY_PORT)], {
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
  const started: NsProcess[] = []
  const stop = async (): Promise<void> => {
    for (const p of started.reverse()) await p.kill(p === relay ? 'SIGINT' : 'SIGTERM')
    await rm(dir, { recursive: true, force: true })
  }
  const discoveryArgs = [CLI, 'discovery', '--host', '0.0.0.0', '--port', String(DISCOVERY_PORT), '--ttl', '30']
  const relayArgs = [CLI, 'run', '--config', config]
  let relay: NsProcess | undefined
  let discovery: NsProcess | undefined
  try {
    if (opts.accounts === true) {
      // the relay namespace's own Redis: nothing in the lab reaches the root namespace's
      const redis = spawnIn(NS.relay, 'redis-server', ['--bind', '127.0.0.1', '--port', '6379', '--save', '', '--appendonly', 'no', '--dir', dir], { label: 'redis' })
      started.push(redis)
      await waitFor('redis ready', () => redis.stdout.some((l) => l.includes('Ready to accept connections')) ? true : undefined, 10_000)
      const keys = join(dir, 'ticket-keys.json')
      await run(process.execPath, [CLI, 'keys', 'generate', '--out', keys])
      discoveryArgs.push('--redis', REDIS_URL, '--ticket-keys-file', keys)
      // ticket keys from discovery (the default <api_url>/api/p2p/ticket-keys), revocations and metering through Redis
      relayArgs.push('--auth', '--redis', REDIS_URL)
    }
    // an admin secret turns accounts on in discovery (and then needs the ticket keys)
    const discoveryEnv = { P2P_SECRET: secret, ...(opts.accounts === true ? { POS_RELAY_ADMIN_SECRET: adminSecret } : {}) }
    const disco = spawnIn(NS.relay, process.execPath, discoveryArgs, { env: discoveryEnv, label: 'discovery' })
    discovery = disco
    started.push(disco)
    // discovery first: a relay with --auth fetches its ticket keys from it
    await pollUntil('discovery answering', async () => await fetchIn(NS.relay, `${localApi}/api/p2p/relays`).then(() => true, () => undefined), {
      timeoutMs: 30_000,
      intervalMs: 200,
      giveUp: () => disco.child.exitCode != null ? `discovery exited (${disco.child.exitCode}): ${disco.stderr.slice(-3).join(' | ')}` : undefined
    })
    relay = spawnIn(NS.relay, process.execPath, relayArgs, { label: 'relay' })
    started.push(relay)
    const relayProc = relay
    const listening = await waitFor('relay listening', () => relayProc.stderr.map((l) => { try { return JSON.parse(l) } catch { return undefined } })
      .find((o) => o?.msg === 'relay listening'), 30_000)
    const relayPeerId: string = listening.peer_id ?? listening.peerId
    if (relayPeerId == null) throw new Error(`relay log has no peer id: ${JSON.stringify(listening)}`)
    await waitFor('relay registered with discovery', async () => {
      try {
        const list = JSON.parse(await fetchIn(NS.relay, `${localApi}/api/p2p/relays`))
        return list.some((r: any) => r.peer_id === relayPeerId) ? true : undefined
      } catch { return undefined }
    }, 30_000, 200)
    const relayQuicAddr = `/ip4/${ADDR.relay}/udp/${RELAY_PORT}/quic-v1/p2p/${relayPeerId}`
    // the relay must register its QUIC address: the SDK peers and any other
    // client learn it from discovery, not from this lab
    const registered = JSON.parse(await fetchIn(NS.relay, `${localApi}/api/p2p/relays`)).find((r: any) => r.peer_id === relayPeerId)
    if (!registered.addrs.includes(relayQuicAddr)) throw new Error(`relay registered ${JSON.stringify(registered.addrs)}, without ${relayQuicAddr}`)
    let apiKey: string | undefined
    if (opts.accounts === true) {
      // the default tier `unlimited` keeps the relay's own per-circuit limits, as the cells without accounts have
      const res = await postJsonIn(NS.relay, `${localApi}/api/admin/accounts`, { authorization: `Bearer ${adminSecret}` }, { name: 'nat-lab', tier: 'unlimited' })
      if (res.status !== 201) throw new Error(`creating the account answered ${res.status}: ${res.text.slice(0, 200)}`)
      apiKey = JSON.parse(res.text).api_key
    }
    const relayMetric = async (prefix: string): Promise<number> => {
      let text: string
      try {
        text = await fetchIn(NS.relay, `http://127.0.0.1:${METRICS_PORT}/metrics`)
      } catch (err: any) {
        // most likely the relay is gone: say how it ended, not just that a fetch failed
        const exit = relayProc.child.exitCode ?? relayProc.child.signalCode ?? 'still running'
        throw new Error(`relay metrics unreachable (${String(err.message).split('\n')[0]}); relay process: ${exit}; relay stderr:\n${relayProc.stderr.slice(-30).join('\n')}`)
      }
      return sumSamples(text, prefix)
    }
    return {
      relayAddr: `/ip4/${ADDR.relay}/tcp/${RELAY_PORT}/p2p/${relayPeerId}`,
      relayQuicAddr,
      relayPeerId,
      discoveryUrl,
      relay,
      discovery,
      ...(apiKey != null ? { apiKey } : {}),
      relayedBytes: async () => await relayMetric('pos_relay_relayed_bytes_total'),
      relayMetric,
      stop
    }
  } catch (err) {
    process.stderr.write(`relay stderr:\n${relay?.stderr.slice(-20).join('\n') ?? '(not started)'}\ndiscovery stderr:\n${discovery?.stderr.slice(-10).join('\n') ?? '(not started)'}\n`)
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
  /** accounts on: the API key each peer gets tickets with (a peer without one presents none) */
  apiKeys?: { dialer?: string, listener?: string }
  marker?: string
  directTimeoutMs?: number
  noDcutr?: boolean
  timeoutMs?: number
}

function peerCommand (impl: Impl, bins: Binaries, stack: RelayStack, apiKey?: string): { cmd: string, args: string[] } {
  // with an API key every peer gets its ticket from discovery and presents it to the relay
  const tickets = apiKey != null ? ['--api-key', apiKey, ...(impl === 'js' ? [] : ['--discovery', stack.discoveryUrl])] : []
  switch (impl) {
    case 'js': return { cmd: process.execPath, args: [JS_PEER, '--discovery', stack.discoveryUrl, ...tickets] }
    case 'rust': return { cmd: bins['rust-peer'], args: tickets }
    case 'rust-quic': return { cmd: bins['rust-peer'], args: ['--transport', 'quic', ...tickets] }
    // go only hole punches from addresses manet.IsPublicAddr accepts: see topology.ts / README
    case 'go': return { cmd: bins['go-peer'], args: ['--public-cidr', INTERNET_CIDR, ...tickets] }
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
  const l = peerCommand(listener, bins, stack, opts.apiKeys?.listener)
  const lp = spawnIn(NS.lanB, l.cmd, [...l.args, ...common(listener), '--mode', 'listen', '--ready-file', ready, ...(opts.noDcutr === true ? ['--no-dcutr'] : [])],
    { label: `${listener}-listener`, timeoutMs: timeoutMs + 10_000 })
  try {
    const info = await pollUntil('listener reservation', async () => {
      try { return JSON.parse(await readFile(ready, 'utf8')) } catch { return undefined }
    }, {
      timeoutMs: 30_000,
      // a listener that failed (e.g. its ticket or reservation refused) will never be ready
      giveUp: () => lp.child.exitCode != null || lp.child.signalCode != null ? `the listener exited (${lp.child.exitCode ?? lp.child.signalCode})` : undefined
    }).catch(async (err) => {
      await lp.kill('SIGKILL')
      throw new Error(`${listener} listener: ${err.message}; stdout: ${lp.stdout.join(' ')} stderr: ${lp.stderr.slice(-10).join(' | ')}`)
    })
    const before = await stack.relayedBytes()
    const d = peerCommand(dialer, bins, stack, opts.apiKeys?.dialer)
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
