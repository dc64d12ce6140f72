import { Command, InvalidArgumentError } from 'commander'
import { noise } from '@chainsafe/libp2p-noise'
import { identify, type Identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { dialableRelayAddrs, readTextCapped } from '@pos-relay/shared'
import { yamux } from '@pos-relay/shared/yamux'
import { intArg, option } from '../options.js'

/** Circuit Relay v2's hop protocol: what a relay must offer for peers to reserve and connect through it */
export const HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

interface CheckOptions { relays: number, requireRelays?: boolean, timeout: number }
interface RelayEntry { id: string, peer_id: string, addrs: string[] }

/** One line per check passed; the first that fails throws, naming what it saw. */
export async function checkDeployment (discoveryUrl: string, opts: CheckOptions, print: (line: string) => void): Promise<void> {
  const base = discoveryUrl.replace(/\/+$/, '')
  const get = async (path: string): Promise<string> => {
    let res: Response
    try {
      res = await fetch(base + path, { signal: AbortSignal.timeout(opts.timeout) })
    } catch (err: any) {
      throw new Error(`GET ${base}${path}: ${String(err.cause?.message ?? err.message)}`)
    }
    const body = await readTextCapped(res)
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${body.slice(0, 300)}`)
    return body
  }
  await get('/readyz')
  print('GET /readyz: 200')
  let relays: RelayEntry[]
  try {
    relays = JSON.parse(await get('/api/p2p/relays'))
  } catch (err: any) {
    throw new Error(err instanceof SyntaxError ? `GET /api/p2p/relays: not JSON: ${err.message}` : err.message)
  }
  if (!Array.isArray(relays)) throw new Error('GET /api/p2p/relays: not a JSON array')
  print(`GET /api/p2p/relays: 200 (${relays.length} relays listed)`)
  if (relays.length === 0) {
    if (opts.requireRelays === true) throw new Error('discovery lists no relay (--require-relays)')
    print('no relay listed: the relay check is skipped (create a RelayPool, or start `pos-relay run`)')
    return
  }
  const node = await createLibp2p({
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // identify runs once, by checkRelay (the relay serves one identify stream at a time)
    services: { identify: identify({ runOnConnectionOpen: false }) }
  })
  try {
    for (const relay of relays.slice(0, opts.relays)) await checkRelay(node, relay, opts.timeout, print)
  } finally {
    await node.stop()
  }
}

/** Dials the relay's first listed TCP address (Noise proves its peer id) and reads what identify says it speaks. */
async function checkRelay (node: Libp2p<{ identify: Identify }>, relay: RelayEntry, timeoutMs: number, print: (line: string) => void): Promise<void> {
  const addrs = dialableRelayAddrs(Array.isArray(relay.addrs) ? relay.addrs : []).filter((a) => a.includes('/tcp/') && !a.includes('/ws'))
  if (addrs.length === 0) throw new Error(`relay ${relay.id}: no dialable TCP address among ${JSON.stringify(relay.addrs)}`)
  const addr = addrs[0]!
  const t0 = Date.now()
  let protocols: string[]
  try {
    const signal = AbortSignal.timeout(timeoutMs)
    const conn = await node.dial(multiaddr(addr), { signal })
    if (conn.remotePeer.toString() !== relay.peer_id) throw new Error(`answered as ${conn.remotePeer.toString()}, listed as ${relay.peer_id}`)
    protocols = (await node.services.identify.identify(conn, { signal })).protocols
    await conn.close()
  } catch (err: any) {
    throw new Error(`relay ${relay.id} at ${addr}: ${String(err.message)}`)
  }
  if (!protocols.includes(HOP_PROTOCOL)) throw new Error(`relay ${relay.id} at ${addr}: does not offer ${HOP_PROTOCOL} (offers ${protocols.join(', ')})`)
  print(`relay ${relay.id} at ${addr}: peer id verified, offers ${HOP_PROTOCOL} (${Date.now() - t0} ms)`)
}

function positiveMs (value: string): number {
  const ms = intArg('--timeout')(value)
  if (ms === 0) throw new InvalidArgumentError('--timeout must be at least 1 ms')
  return ms
}

export function checkCommand (): Command {
  return new Command('check')
    .description('Check a deployment from where it is used: discovery answers (/readyz, the relay list) and listed relays accept a libp2p connection with their listed peer id and offer the relay protocol. `helm test` runs it inside the cluster')
    .argument('<discovery-url>', 'the discovery API, e.g. http://pos-relay-discovery.pos-relay.svc:8080')
    .addOption(option('--relays <n>', 'how many listed relays to dial (0: none)').argParser(intArg('--relays')).default(1))
    .addOption(option('--require-relays', 'fail when discovery lists no relay (default: say so and pass)'))
    .addOption(option('--timeout <ms>', 'for each request and each dial').argParser(positiveMs).default(10_000))
    .action(async (url: string, opts: CheckOptions) => {
      await checkDeployment(url, opts, (line) => { process.stdout.write(line + '\n') })
    })
}
