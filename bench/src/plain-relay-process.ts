/**
 * A PLAIN upstream js-libp2p Circuit Relay v2 relay (no pos-relay code):
 * tcp + noise + yamux + identify + circuitRelayServer({ reservations: {
 * applyDefaultLimit: false } }), on 127.0.0.1 with a random port.
 * BENCH_PLAIN_MAX_RESERVATIONS raises upstream's maxReservations (default 15;
 * upstream keeps a reservation until its TTL after the client left, so the
 * time-to-reservation test with many fresh clients needs more).
 * Prints one JSON line: {"ready":true,"pid":..,"addrs":[..]}.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { serve } from './lib/rpc-child.ts'

const maxReservations = process.env.BENCH_PLAIN_MAX_RESERVATIONS != null ? Number(process.env.BENCH_PLAIN_MAX_RESERVATIONS) : undefined
const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    relay: circuitRelayServer({ reservations: { applyDefaultLimit: false, ...(maxReservations != null ? { maxReservations } : {}) } })
  }
})
await node.start()

serve({
  kind: 'plain',
  peerId: node.peerId.toString(),
  addrs: node.getMultiaddrs().map(String)
}, {}, async () => { await node.stop() })
