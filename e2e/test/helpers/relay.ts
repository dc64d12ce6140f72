import assert from 'node:assert/strict'
import { join } from 'node:path'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { freePort } from '@pos-relay/testing'
import { runCli, spawnCli, type CliProcess } from './cli.ts'

/** a `pos-relay run` that has printed relay_ready */
export interface LocalRelay {
  proc: CliProcess
  /** the first address relay_ready lists (TCP), ending in /p2p/<peer id> */
  addr: Multiaddr
  peerId: string
  /** the TCP port asked for (0: the system's choice, see addr) */
  port: number
  metricsPort: number
}

export interface LocalRelayOptions {
  /** where `pos-relay init` writes the config, `<name>.json` (the caller removes dir) */
  dir: string
  /** default `relay` */
  name?: string
  /** the P2P secret `pos-relay init` is given (default `s`) */
  secret?: string
  /** more `pos-relay init` arguments (such as --api-url) */
  initArgs?: string[]
  /** default 0 */
  port?: number
  /** more `pos-relay run` arguments */
  args?: string[]
  env?: Record<string, string>
}

/**
 * `pos-relay init` (P2P secret `s` unless given), then `pos-relay run` on 127.0.0.1 with its
 * metrics on a free 127.0.0.1 port, resolved once it prints relay_ready. The
 * caller kills `proc`; when the relay never gets ready it is killed here.
 */
export async function startLocalRelay (opts: LocalRelayOptions): Promise<LocalRelay> {
  const config = join(opts.dir, `${opts.name ?? 'relay'}.json`)
  assert.equal((await runCli(['init', '--config', config, ...(opts.initArgs ?? [])], { input: `${opts.secret ?? 's'}\n` })).code, 0)
  const port = opts.port ?? 0
  const metricsPort = await freePort()
  const proc = spawnCli(['run', '--config', config, '--host', '127.0.0.1', '--port', String(port), '--metrics-host', '127.0.0.1', '--metrics-port', String(metricsPort),
    ...(opts.args ?? [])], opts.env != null ? { env: opts.env } : {})
  try {
    const ready = await proc.waitForJson((o) => o.event === 'relay_ready')
    return { proc, addr: multiaddr(ready.addrs[0]), peerId: ready.peer_id, port, metricsPort }
  } catch (err) {
    await proc.kill('SIGKILL')
    throw err
  }
}

/** a `pos-relay discovery` that has printed discovery_ready */
export interface LocalDiscovery {
  proc: CliProcess
  /** http://127.0.0.1:<port> */
  url: string
  port: number
}

export interface LocalDiscoveryOptions {
  /** its P2P_SECRET */
  secret: string
  /** --redis (without it: the in-memory store) */
  redisUrl?: string
  /** more `pos-relay discovery` arguments (--ttl, --ticket-keys-file, ...) */
  args?: string[]
  /** more environment (ADMIN_SECRET, ...) */
  env?: Record<string, string>
}

/**
 * `pos-relay discovery --host 127.0.0.1 --port <free port>`, resolved once it
 * prints discovery_ready. The caller kills `proc`; when discovery never gets
 * ready it is killed here.
 */
export async function startLocalDiscovery (opts: LocalDiscoveryOptions): Promise<LocalDiscovery> {
  const port = await freePort()
  const proc = spawnCli(['discovery', '--host', '127.0.0.1', '--port', String(port), ...(opts.redisUrl != null ? ['--redis', opts.redisUrl] : []), ...(opts.args ?? [])],
    { env: { P2P_SECRET: opts.secret, ...opts.env } })
  try {
    await proc.waitForJson((o) => o.event === 'discovery_ready')
    return { proc, url: `http://127.0.0.1:${port}`, port }
  } catch (err) {
    await proc.kill('SIGKILL')
    throw err
  }
}
