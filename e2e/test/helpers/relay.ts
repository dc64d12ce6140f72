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
  /** default 0 */
  port?: number
  /** more `pos-relay run` arguments */
  args?: string[]
  env?: Record<string, string>
}

/**
 * `pos-relay init` (P2P secret `s`), then `pos-relay run` on 127.0.0.1 with its
 * metrics on a free 127.0.0.1 port, resolved once it prints relay_ready. The
 * caller kills `proc`; when the relay never gets ready it is killed here.
 */
export async function startLocalRelay (opts: LocalRelayOptions): Promise<LocalRelay> {
  const config = join(opts.dir, `${opts.name ?? 'relay'}.json`)
  assert.equal((await runCli(['init', '--config', config], { input: 's\n' })).code, 0)
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
