/**
 * js-libp2p#3601 on the unpatched circuit relay transport, and the renewal
 * through the internals the patch circuit-relay-transport exposes (which the
 * SDK's RelayManager uses).
 */
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { waitFor } from '@pos-relay/testing'
import { createLibp2p, type Libp2p } from 'libp2p'
import { CIRCUIT_RELAY_TRANSPORT, circuitTransportInternals } from '@pos-relay/upstream-patches/circuit-relay-transport'
import { checkVersion } from '@pos-relay/upstream-patches/version'

const nodes: Libp2p[] = []
afterEach(async () => { while (nodes.length > 0) await nodes.pop()!.stop() })

async function node (opts: Record<string, any>): Promise<Libp2p> {
  const n = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], ...opts })
  nodes.push(n)
  return n
}

const circuitAddrs = (n: Libp2p): string[] => n.getMultiaddrs().map(String).filter((a) => a.includes('/p2p-circuit'))

test('the installed version is the one the patch was written for; a node without the internals fails loudly when used', () => {
  assert.equal(checkVersion(CIRCUIT_RELAY_TRANSPORT), '4.2.13')
  assert.throws(() => circuitTransportInternals({}).transportManager(), /components\.transportManager/)
})

// When this fails, upstream re-reserves by itself and the RelayManager's renewal can go (UPSTREAM.md).
test('upstream never reserves again after the relay connection drops; renewing through the patch\'s internals does', async () => {
  const relay = await node({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, services: { identify: identify(), relay: circuitRelayServer() } })
  const listener = await node({ transports: [tcp(), circuitRelayTransport()], services: { identify: identify() } })
  await listener.dial(relay.getMultiaddrs()[0]!)
  await circuitTransportInternals(listener).transportManager().listen([multiaddr(`/p2p/${relay.peerId}/p2p-circuit`)])
  await waitFor(() => circuitAddrs(listener).length > 0, { timeoutMs: 10_000, message: 'no circuit address' })

  await relay.hangUp(listener.peerId)
  await waitFor(() => circuitAddrs(listener).length === 0, { timeoutMs: 10_000, message: 'circuit address kept after the relay hung up' })
  // the relay is up and dialable all along; upstream does not come back to it
  await new Promise((resolve) => setTimeout(resolve, 3000))
  assert.deepEqual(circuitAddrs(listener), [])
  assert.equal(listener.getConnections(relay.peerId).length, 0)

  await circuitTransportInternals(listener).renewReservation(relay.peerId, async () => await listener.dial(relay.getMultiaddrs()[0]!))
  await waitFor(() => circuitAddrs(listener).length > 0, { timeoutMs: 10_000, message: 'renewal gave no circuit address' })
})
