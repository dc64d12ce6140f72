/**
 * The `pos-relay` CLI as an operator runs it (packages/cli/bin/pos-relay.js,
 * this Node): short commands (`runCli`: init, keys generate, accounts
 * create), long-running servers that print a ready JSON line
 * (`startCliServer`: discovery), and a relay (`startCliRelay`: `pos-relay
 * init`, then `pos-relay run --config <file> ...flags` on 127.0.0.1 with
 * random ports). Servers exit when the bench goes away (see
 * exit-with-parent.ts) and are killed on stop().
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { killTrackedChildren, trackChild } from '@pos-relay/testing'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../../../packages/cli/bin/pos-relay.js', import.meta.url))
const PRELOAD = new URL('./exit-with-parent.ts', import.meta.url).href

/** SIGKILLs every child still running, relays included (synchronous: safe in an 'exit' handler); @pos-relay/testing tracks them. */
export const killAllRelays = killTrackedChildren

export interface CliRelay {
  name: string
  pid: number
  /** /ip4/127.0.0.1/tcp/<port>/p2p/<id> */
  addr: string
  port: number
  peerId: string
  metricsPort: number
  args: string[]
  /** the bench-specific flags (after the common ones) */
  flags: string[]
  /** the relay's /metrics as text */
  metrics: () => Promise<string>
  /** SIGTERM, SIGKILL after graceMs; resolves once exited */
  stop: (graceMs?: number) => Promise<void>
  stderrTail: () => string
}

/** Runs a short `pos-relay` command to completion; its stdout. Throws on a non-zero exit. */
export async function runCli (args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<string> {
  const child = trackChild(spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }))
  let out = ''
  let err = ''
  child.stderr!.on('data', (d) => { err += String(d) })
  child.stdout!.on('data', (d) => { out += String(d) })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => { resolve(c) }))
  clearTimeout(timer)
  if (code !== 0) throw new Error(`pos-relay ${args[0]} exited with ${code}: ${err.slice(-2000)}`)
  return out
}

export interface CliServer {
  name: string
  pid: number
  /** the ready line */
  ready: any
  /** SIGTERM, SIGKILL after graceMs; resolves once exited */
  stop: (graceMs?: number) => Promise<void>
  stderrTail: () => string
}

/** Starts a long-running `pos-relay` command; resolves once it printed a JSON line with `event: readyEvent`. */
export async function startCliServer (name: string, args: string[], readyEvent: string, opts: { env?: Record<string, string>, readyTimeoutMs?: number } = {}): Promise<CliServer> {
  const child = trackChild(spawn(process.execPath, ['--import', PRELOAD, CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } }))
  child.stdin!.on('error', () => {})
  const tail: string[] = []
  createInterface({ input: child.stderr! }).on('line', (line) => {
    if (process.env.BENCH_VERBOSE === '1') process.stderr.write(`[${name}] ${line}\n`)
    tail.push(line)
    if (tail.length > 30) tail.shift()
  })
  let exited = false
  const exit = new Promise<void>((resolve) => { child.once('exit', () => { exited = true; resolve() }) })
  const stderrTail = (): string => tail.join('\n')
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000
  const ready = await new Promise<any>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`${name}: no ${readyEvent} after ${readyTimeoutMs} ms\n${stderrTail()}`)) }, readyTimeoutMs)
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: any
      try { msg = JSON.parse(line) } catch { return }
      if (msg?.event === readyEvent) { clearTimeout(timer); resolve(msg) }
    })
    void exit.then(() => { clearTimeout(timer); reject(new Error(`${name} exited before ${readyEvent}\n${stderrTail()}`)) })
  }).catch((err) => { child.kill('SIGKILL'); throw err })
  return {
    name,
    pid: child.pid!,
    ready,
    async stop (graceMs = 5000) {
      if (exited) return
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs)
      await exit
      clearTimeout(t)
    },
    stderrTail
  }
}

/** Sum of one metric's samples whose label set matches `labels` (substring), e.g. `reason="ip_rate"`. */
export function metricValue (text: string, name: string, labels = ''): number {
  let total = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue
    if (labels !== '' && !rest.includes(labels)) continue
    total += Number(rest.slice(rest.lastIndexOf(' ') + 1))
  }
  return total
}

/** Open sockets of a process (its /proc/<pid>/fd entries that are sockets): pending handshakes included. */
export function socketCount (pid: number): number {
  let n = 0
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try { if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++ } catch {}
  }
  return n
}

/**
 * TCP connections on `port` (the relay's libp2p port) held by process `pid`:
 * its socket fds matched by inode against /proc/<pid>/net/tcp{,6}, listening
 * socket excluded. Unlike a count of all its sockets this ignores the metrics
 * HTTP connection and Redis; unlike pos_relay_connections_active it includes
 * connections still in their handshake.
 */
export function p2pConnectionCount (pid: number, port: number): number {
  return p2pSockets(pid, port).connections
}

/**
 * Connections on the relay's p2p port: `connections` held by the process
 * (see p2pConnectionCount), and `acceptQueue`, connections the kernel has
 * completed but the relay has not accepted yet (rx_queue of its listening
 * socket in /proc/<pid>/net/tcp).
 */
export function p2pSockets (pid: number, port: number): { connections: number, acceptQueue: number } {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m != null) inodes.add(m[1]!)
    } catch {}
  }
  let n = 0
  let acceptQueue = 0
  for (const file of ['tcp', 'tcp6']) {
    let text = ''
    try { text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 10) continue
      const localPort = parseInt(f[1]!.split(':')[1]!, 16)
      if (localPort !== port || !inodes.has(f[9]!)) continue
      if (f[3] === '0A') acceptQueue += parseInt(f[4]!.split(':')[1]!, 16)
      else n++
    }
  }
  return { connections: n, acceptQueue }
}

export interface StartCliRelayOptions {
  readyTimeoutMs?: number
  /** edits the config file `pos-relay init` wrote (for fields without a flag, e.g. auth.redis_url) */
  configure?: (config: Record<string, any>) => void
}

export async function startCliRelay (name: string, dir: string, flags: string[], opts: StartCliRelayOptions = {}): Promise<CliRelay> {
  const config = join(dir, `${name}.json`)
  await runCli(['init', '--config', config], { P2P_SECRET: 'bench-limits' })
  if (opts.configure != null) {
    const cfg = JSON.parse(readFileSync(config, 'utf8'))
    opts.configure(cfg)
    writeFileSync(config, JSON.stringify(cfg, null, 2), { mode: 0o600 })
  }
  const args = ['run', '--config', config, '--host', '127.0.0.1', '--port', '0', '--metrics-host', '127.0.0.1', '--metrics-port', '0',
    '--drain-seconds', '0', '--log-level', process.env.LIMITS_RELAY_LOG ?? 'warn', ...flags]
  const server = await startCliServer(name, args, 'relay_ready', { readyTimeoutMs: opts.readyTimeoutMs })
  const ready = server.ready
  const addr: string = ready.addrs.find((a: string) => a.startsWith('/ip4/127.0.0.1/tcp/')) ?? ready.addrs[0]
  const metricsPort: number = ready.metrics_port
  return {
    name,
    pid: server.pid,
    addr,
    port: Number(/\/tcp\/(\d+)/.exec(addr)![1]),
    peerId: ready.peer_id,
    metricsPort,
    args,
    flags,
    async metrics () {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) })
      return await res.text()
    },
    stop: server.stop,
    stderrTail: server.stderrTail
  }
}
