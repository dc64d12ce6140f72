/**
 * pos-relay NAT lab: the js peer, built with our client SDK (@pos-relay/client:
 * js-libp2p TCP + Noise + Yamux, identify, ping, Circuit Relay v2 transport,
 * DCUtR, and the RelayManager that keeps the reservation alive).
 *
 * Same command-line contract as ../rust-peer and ../go-peer:
 *
 *   node peer.ts --mode listen --relay <relay multiaddr with /p2p/> [--discovery URL] [--ready-file F]
 *   node peer.ts --mode dial   --relay <relay multiaddr> --peer <listener id> --payload-bytes N
 *                [--discovery URL] [--marker TEXT] [--direct-timeout-ms MS] [--no-dcutr]
 *   with --discovery: [--api-key KEY]  the SDK gets account tickets with the key and presents
 *                them to the relay before reserving and dialing (a relay with --auth needs them)
 *
 * With --discovery the SDK finds the relay through the discovery API, reserves
 * on it and dials through it (`RelayManager.dial`), as an app does. Without it
 * the same js-libp2p node is built directly and listens on `<relay>/p2p-circuit`.
 *
 * Prints exactly one JSON result line on stdout (and to --out-file):
 *   {"impl":"js","role":"dialer","ok":true,"connection":"relayed"|"direct","remote_addr":"...","sha256":"...","bytes":N, ...}
 * Progress goes to stderr as JSON lines.
 */
import { createHash } from 'node:crypto'
import { rename, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { createRelayPeer, isRelayed, type RelayPeer } from '@pos-relay/client'
import type { Connection, Stream } from '@libp2p/interface'

const PAYLOAD_PROTOCOL = '/pos-relay-interop/payload/1.0.0'

const { values: args } = parseArgs({
  options: {
    mode: { type: 'string' },
    relay: { type: 'string' },
    discovery: { type: 'string' },
    'api-key': { type: 'string' },
    peer: { type: 'string' },
    'payload-bytes': { type: 'string', default: String(1 << 20) },
    marker: { type: 'string', default: '' },
    'out-file': { type: 'string' },
    'ready-file': { type: 'string' },
    'timeout-ms': { type: 'string', default: '60000' },
    'direct-timeout-ms': { type: 'string', default: '10000' },
    'no-dcutr': { type: 'boolean', default: false },
    listen: { type: 'string', default: '/ip4/0.0.0.0/tcp/0' }
  }
})

const role = args.mode === 'listen' ? 'listener' : 'dialer'
const started = Date.now()
let upgradedAfter: number | null = null

function log (event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(JSON.stringify({ event, ...fields }) + '\n')
}

async function emit (result: Record<string, unknown>): Promise<void> {
  const line = JSON.stringify({ impl: 'js', role, ...result })
  process.stdout.write(line + '\n')
  if (args['out-file'] != null) await writeFile(args['out-file'], line + '\n')
}

async function fail (err: unknown, peerId?: string): Promise<never> {
  await emit({ ok: false, peer_id: peerId, error: err instanceof Error ? err.message : String(err) })
  process.exit(1)
}

/** the marker repeated, or the same xorshift stream as the rust and go peers */
function * payloadChunks (total: number, marker: string): Generator<Uint8Array> {
  const m = new TextEncoder().encode(marker)
  let state = 0x9e3779b97f4a7c15n
  const mask = (1n << 64n) - 1n
  let offset = 0
  for (let sent = 0; sent < total;) {
    const len = Math.min(64 * 1024, total - sent)
    const buf = new Uint8Array(len)
    if (m.length > 0) {
      for (let i = 0; i < len; i++) buf[i] = m[(offset++) % m.length]!
    } else {
      const view = new DataView(buf.buffer)
      for (let i = 0; i < len; i += 8) {
        state ^= (state << 13n) & mask
        state ^= state >> 7n
        state ^= (state << 17n) & mask
        if (i + 8 <= len) view.setBigUint64(i, state, true)
        else for (let j = 0; i + j < len; j++) buf[i + j] = Number((state >> BigInt(8 * j)) & 0xffn)
      }
    }
    sent += len
    yield buf
  }
}

const kind = (conn: Connection): 'relayed' | 'direct' => isRelayed(conn) ? 'relayed' : 'direct'

function directConnection (node: Libp2p, peer: string): Connection | undefined {
  return node.getConnections(peerIdFromString(peer)).find((c) => !isRelayed(c) && c.status === 'open')
}

async function buildNode (): Promise<{ node: Libp2p, sdk?: RelayPeer }> {
  const services: Record<string, any> = { identify: identify(), ping: ping() }
  if (args['no-dcutr'] !== true) services.dcutr = dcutr()
  if (args['api-key'] != null && args.discovery == null) throw new Error('--api-key needs --discovery (tickets come from the discovery API)')
  if (args.discovery != null) {
    if (args['no-dcutr'] === true) throw new Error('--no-dcutr is not supported with --discovery (the SDK always runs DCUtR)')
    const sdk = await createRelayPeer({
      discoveryUrl: args.discovery,
      relayCount: 1,
      listen: [args.listen!],
      ...(args['api-key'] != null ? { apiKey: args['api-key'] } : {}),
      onEvent: (e) => { log(`sdk_${e.type}`, e as any) }
    })
    return { node: sdk.node, sdk }
  }
  const node = await createLibp2p({
    addresses: { listen: [args.listen!] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services
  })
  await node.start()
  return { node }
}

async function main (): Promise<void> {
  if (args.relay == null) await fail('--relay is required')
  const relayAddr = multiaddr(args.relay!)
  const timeout = setTimeout(() => { void fail(`timed out after ${args['timeout-ms']} ms`) }, Number(args['timeout-ms']))
  timeout.unref()
  const { node, sdk } = await buildNode()
  const self = node.peerId.toString()
  log('start', { peer_id: self, mode: args.mode, sdk: sdk != null })
  node.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    log('connection', { peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), relayed: isRelayed(c), limited: c.limits != null })
    if (!isRelayed(c) && upgradedAfter == null && node.getConnections(c.remotePeer).some(isRelayed)) upgradedAfter = Date.now() - started
  })

  if (args.mode === 'listen') {
    const done = Promise.withResolvers<Record<string, unknown>>()
    await node.handle(PAYLOAD_PROTOCOL, async (stream: Stream, conn: Connection) => {
      const hash = createHash('sha256')
      let bytes = 0
      try {
        for await (const chunk of stream) {
          const buf = chunk.subarray()
          hash.update(buf)
          bytes += buf.byteLength
        }
        const sha256 = hash.digest('hex')
        stream.send(new TextEncoder().encode(JSON.stringify({ bytes, sha256 }) + '\n'))
        await stream.close()
        done.resolve({ ok: true, connection: kind(conn), remote_addr: conn.remoteAddr.toString(), sha256, bytes, peer_id: self, remote_peer: conn.remotePeer.toString() })
      } catch (err: any) {
        done.resolve({ ok: false, connection: kind(conn), remote_addr: conn.remoteAddr.toString(), bytes, peer_id: self, error: err.message })
      }
    }, { runOnLimitedConnection: true })
    if (sdk == null) await node.dial(relayAddr)
    if (sdk == null) {
      // plain js-libp2p: listen on the relay (reserves)
      await (node as any).components.transportManager.listen([multiaddr(`${args.relay!}/p2p-circuit`)])
    }
    const circuit = node.getMultiaddrs().find((ma) => ma.toString().includes('/p2p-circuit'))
    if (circuit == null) await fail('no /p2p-circuit address after reserving', self)
    log('reserved', { addr: circuit!.toString() })
    if (args['ready-file'] != null) {
      await writeFile(args['ready-file'] + '.tmp', JSON.stringify({ peer_id: self, addr: circuit!.toString() }) + '\n')
      await rename(args['ready-file'] + '.tmp', args['ready-file'])
    }
    const result = await done.promise
    await emit({ ...result, upgraded_after_ms: upgradedAfter })
    await new Promise((resolve) => setTimeout(resolve, 1000))
    await (sdk?.stop() ?? node.stop())
    process.exit(result.ok === true ? 0 : 1)
  }

  if (args.mode !== 'dial') await fail(`unknown --mode ${args.mode}`, self)
  if (args.peer == null) await fail('--peer is required with --mode dial', self)
  const peer = args.peer!
  // connect to the relay first: identify tells us our observed address, which DCUtR needs
  await node.dial(relayAddr)
  const relayed = sdk != null
    ? await sdk.relays.dial(peer)
    : await node.dial(multiaddr(`${args.relay!}/p2p-circuit/p2p/${peer}`))
  log('connected', { addr: relayed.remoteAddr.toString(), relayed: isRelayed(relayed) })
  const wait = args['no-dcutr'] === true ? 0 : Number(args['direct-timeout-ms'])
  const deadline = Date.now() + wait
  while (directConnection(node, peer) == null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  const conn = directConnection(node, peer) ?? relayed
  log('sending', { bytes: Number(args['payload-bytes']), connection: kind(conn) })
  const stream = await conn.newStream(PAYLOAD_PROTOCOL, { runOnLimitedConnection: true })
  const hash = createHash('sha256')
  let sent = 0
  for (const chunk of payloadChunks(Number(args['payload-bytes']), args.marker!)) {
    hash.update(chunk)
    sent += chunk.byteLength
    if (!stream.send(chunk)) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
  }
  await stream.close()
  let reply = ''
  for await (const chunk of stream) reply += new TextDecoder().decode(chunk.subarray())
  const sha256 = hash.digest('hex')
  let error: string | undefined
  try {
    const r = JSON.parse(reply)
    if (r.sha256 !== sha256 || r.bytes !== sent) error = `listener got ${r.bytes} bytes sha256 ${r.sha256}`
  } catch {
    error = `bad reply: ${reply}`
  }
  await emit({
    ok: error == null,
    connection: kind(conn),
    remote_addr: conn.remoteAddr.toString(),
    sha256,
    bytes: sent,
    peer_id: self,
    remote_peer: peer,
    upgraded_after_ms: upgradedAfter,
    elapsed_ms: Date.now() - started,
    ...(error != null ? { error } : {})
  })
  await (sdk?.stop() ?? node.stop())
  process.exit(error == null ? 0 : 1)
}

main().catch(async (err) => { await fail(err) })
