/**
 * The two bench peers, one dialer and one listener, in ONE process separate
 * from the relay: plain js-libp2p nodes (tcp + noise + yamux + identify +
 * circuit relay transport; no DCUtR, so a relayed connection stays relayed).
 * Driven by JSON-line requests from run.ts (see lib/children.ts):
 *   listen {relay?}           listener reserves a slot on `relay` (/p2p-circuit)
 *   transfer {mode, relay?, bytes, chunkBytes, timeoutMs}
 *                             dialer -> listener, via the relay or direct TCP
 *   reserveLatency {relay, n, timeoutMs, spacingMs}
 *                             n fresh client nodes, one after another (at most
 *                             one per spacingMs), each timed from its first
 *                             dial to the relay until its reservation is held
 *   present {relay, who, discoveryUrl, apiKey}
 *                             the listener or the dialer gets an account ticket
 *                             for its peer id from discovery with the API key
 *                             (the client SDK's TicketClient, cached and
 *                             renewed) and presents it to `relay` over
 *                             /pos-relay/ticket/1.0.0 (presentTicket)
 */
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { presentTicket, TicketClient } from '@pos-relay/client'
import { createLibp2p, type Libp2p } from 'libp2p'
import { serve } from './lib/rpc-child.ts'
import { handleSink, transfer } from './lib/transfer.ts'

function createPeer (listen: string[]): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  })
}

/** Listens on `<relay>/p2p-circuit`, i.e. makes a reservation; resolves once it is held. */
async function reserve (node: Libp2p, relay: string, timeoutMs: number): Promise<string[]> {
  const ma = multiaddr(relay).encapsulate('/p2p-circuit')
  const tm = (node as any).components.transportManager
  await Promise.race([
    tm.listen([ma]),
    new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`no reservation on ${relay} after ${timeoutMs} ms`)), timeoutMs).unref())
  ])
  const circuit = node.getMultiaddrs().map(String).filter((a) => a.includes('/p2p-circuit'))
  if (circuit.length === 0) throw new Error(`listen on ${ma} resolved but the node has no /p2p-circuit address`)
  return circuit
}

const listener = await createPeer(['/ip4/127.0.0.1/tcp/0'])
const dialer = await createPeer([])
await listener.start()
await dialer.start()
await handleSink(listener)
const directAddr = listener.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/tcp/'))!

const ticketClients = new Map<string, TicketClient>()

serve({ listener: listener.peerId.toString(), dialer: dialer.peerId.toString(), direct: directAddr.toString() }, {
  async present ({ relay, who, discoveryUrl, apiKey }: { relay: string, who: 'listener' | 'dialer', discoveryUrl: string, apiKey: string }) {
    const node = who === 'listener' ? listener : dialer
    let client = ticketClients.get(who)
    if (client == null) ticketClients.set(who, client = new TicketClient({ discoveryUrl, apiKey, peerId: node.peerId }))
    const t0 = performance.now()
    const ticket = await client.current()
    const t1 = performance.now()
    const conn = await node.dial(multiaddr(relay), { signal: AbortSignal.timeout(10_000) })
    await presentTicket(node, conn.remotePeer, ticket.token)
    return { ticketMs: t1 - t0, presentMs: performance.now() - t1 }
  },

  async listen ({ relay, timeoutMs = 20_000 }: { relay: string, timeoutMs?: number }) {
    const t0 = performance.now()
    const addrs = await reserve(listener, relay, timeoutMs)
    return { reserveMs: performance.now() - t0, addrs }
  },

  async transfer ({ mode, relay, bytes, chunkBytes, timeoutMs, keepOpen = false }: { mode: 'relay' | 'direct', relay?: string, bytes: number, chunkBytes: number, timeoutMs: number, keepOpen?: boolean }) {
    const target = mode === 'direct'
      ? directAddr
      : multiaddr(relay!).encapsulate(`/p2p-circuit/p2p/${listener.peerId}`)
    let ok = false
    try {
      const result = await transfer(dialer, target, bytes, { chunkBytes, timeoutMs })
      const conns = dialer.getConnections(listener.peerId)
      const relayed = conns.some((c) => c.remoteAddr.toString().includes('/p2p-circuit'))
      if (relayed !== (mode === 'relay')) throw new Error(`expected a ${mode} connection, got ${conns.map((c) => c.remoteAddr.toString()).join(', ')}`)
      ok = true
      return { ...result, relayed }
    } finally {
      // a fresh connection (and circuit) per transfer; `keepOpen` leaves it
      // (and the circuit) open until `hangUp`, to look at the relay meanwhile
      if (!ok || !keepOpen) await dialer.hangUp(listener.peerId).catch(() => {})
    }
  },

  async hangUp () {
    await dialer.hangUp(listener.peerId)
  },

  async reserveLatency ({ relay, n, timeoutMs = 10_000, spacingMs = 250 }: { relay: string, n: number, timeoutMs?: number, spacingMs?: number }) {
    const samples: number[] = []
    let lastStart = 0
    for (let i = 0; i < n; i++) {
      // libp2p refuses more than 5 inbound connections per second from one
      // host (connectionManager.inboundConnectionThreshold), and all bench
      // clients come from 127.0.0.1: start at most one client per `spacingMs`
      const wait = lastStart + spacingMs - performance.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      lastStart = performance.now()
      const node = await createPeer([])
      await node.start()
      try {
        const t0 = performance.now()
        await reserve(node, relay, timeoutMs)
        samples.push(performance.now() - t0)
      } finally {
        await node.stop()
      }
    }
    return samples
  }
}, async () => {
  await dialer.stop()
  await listener.stop()
})
