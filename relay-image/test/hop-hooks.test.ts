/**
 * installHopHooks composing admission and accounting on a stubbed relay
 * server, with in-memory streams (@libp2p/utils streamPair) for the HOP
 * stream and the STOP stream, in the style of js-libp2p's hop tests: no
 * libp2p node, no network. The real-node behaviour is in relay.test.ts,
 * circuit-limits.test.ts and hop-refusals.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pbStream, streamPair } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_TIERS } from '@pos-relay/accounts'
import { DEFAULT_LIMITS, installHopHooks, RelayMetrics, type AccountPolicy, type HopHooksOptions } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { HopMessage } from '@pos-relay/upstream-patches/circuit-relay-server'
import { waitFor } from '@pos-relay/testing'
import type { Connection, PeerId, Stream } from '@libp2p/interface'

const logger = createLogger({ name: 'hop-hooks-test', level: 'silent' })
const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
const connectionOf = (peer: PeerId): Connection => ({ remotePeer: peer, remoteAddr: multiaddr('/ip4/10.0.0.1/tcp/4001'), status: 'open', timeline: { open: 1 } }) as unknown as Connection

/** A stand-in for upstream's relay server: the internals patchHopServer checks and uses. */
function stubServer () {
  const reservations = new Map<string, { limit?: unknown, signal: AbortSignal & { clear: () => void } }>()
  const connections = new Map<string, Connection[]>()
  const destinations: Stream[] = []
  const server = {
    components: { connectionGater: {}, connectionManager: { getConnections: (p: PeerId) => connections.get(p.toString()) ?? [] } },
    reservationStore: {
      reservations: { get size () { return reservations.size }, get: (p: PeerId) => reservations.get(p.toString()), delete: (p: PeerId) => reservations.delete(p.toString()) },
      reserve: (peer: PeerId) => {
        reservations.set(peer.toString(), { signal: Object.assign(new AbortController().signal, { clear: () => {} }) })
        return { status: 'OK', expire: 0 }
      }
    },
    // upstream's RESERVE, reduced to what the hooks wrap: reserve, answer OK
    handleReserve: async (ctx: any, options: any) => {
      const result = server.reservationStore.reserve(ctx.connection.remotePeer)
      await ctx.stream.pb(HopMessage).write({ type: 'STATUS', status: result.status }, options)
    },
    handleConnect: async () => { throw new Error('upstream handleConnect must be replaced') },
    // STOP: the destination accepts; the test holds its end
    stopHop: async () => {
      const [atRelay, atDestination] = await streamPair()
      destinations.push(atDestination)
      return atRelay
    }
  }
  /** a peer with a reservation and an open direct connection */
  const reserved = (peer: PeerId): void => {
    server.reservationStore.reserve(peer)
    connections.set(peer.toString(), [connectionOf(peer)])
  }
  return { server, reserved, destinations }
}

function install (server: unknown, over: Partial<HopHooksOptions> = {}) {
  const metrics = new RelayMetrics()
  const state = { draining: false }
  const hooks = installHopHooks(server, {
    limits: { ...DEFAULT_LIMITS, ...over.limits },
    metrics,
    logger,
    isDraining: () => state.draining,
    rateLimiter: { allow: async () => true },
    denials: { note: () => {} },
    ...over
  })
  const metric = async (pattern: RegExp): Promise<number> => Number(pattern.exec(await metrics.registry.metrics())?.[1] ?? 0)
  return { hooks, state, metric }
}

/** Sends a HOP request through the (stubbed) server; returns the answer and the client's end of the stream. */
async function hop (server: any, type: 'RESERVE' | 'CONNECT', from: PeerId, to?: PeerId) {
  const [client, atRelay] = await streamPair()
  const ctx = { stream: pbStream(atRelay), connection: connectionOf(from), request: { type, ...(to != null ? { peer: { id: to.toMultihash().bytes, addrs: [] } } : {}) } }
  const handling = (type === 'RESERVE' ? server.handleReserve(ctx, {}) : server.handleConnect(ctx, {})) as Promise<void>
  const clientPb = pbStream(client)
  const answer = await clientPb.pb(HopMessage).read({ signal: AbortSignal.timeout(5000) })
  await handling
  return { answer, client: clientPb.unwrap() }
}

describe('installHopHooks on in-memory streams', () => {
  it('refuses upstream\'s internals when they are missing', () => {
    assert.throws(() => install({}), /internals changed/)
  })

  it('RESERVE while draining: RESERVATION_REFUSED, counted, and the stream closed', async () => {
    const { server } = stubServer()
    const { state, metric } = install(server)
    state.draining = true
    const { answer, client } = await hop(server, 'RESERVE', await newPeer())
    assert.equal(answer.status, 'RESERVATION_REFUSED')
    assert.equal(client.remoteWriteStatus, 'closed')
    assert.equal(await metric(/pos_relay_reservations_total\{result="refused"\} (\d+)/), 1)
    assert.equal(await metric(/pos_relay_denials_total\{reason="draining"\} (\d+)/), 1)
  })

  it('RESERVE admitted: upstream reserves, the relay\'s data limit is set on the reservation', async () => {
    const { server } = stubServer()
    install(server, { limits: { ...DEFAULT_LIMITS, circuit_data_limit_bytes: 4096 } })
    const peer = await newPeer()
    const { answer, client } = await hop(server, 'RESERVE', peer)
    assert.equal(answer.status, 'OK')
    assert.deepEqual(server.reservationStore.reservations.get(peer)?.limit, { data: 4096n })
    assert.equal(client.remoteWriteStatus, 'closed')
  })

  it('CONNECT: OK with the data limit, bytes relayed both ways and counted, the circuit tracked until it ends', async () => {
    const { server, reserved, destinations } = stubServer()
    const { hooks, metric } = install(server, { limits: { ...DEFAULT_LIMITS, circuit_data_limit_bytes: 1 << 20 } })
    const dst = await newPeer()
    reserved(dst)
    const { answer, client } = await hop(server, 'CONNECT', await newPeer(), dst)
    assert.equal(answer.status, 'OK')
    assert.equal(answer.limit?.data, 1n << 20n)
    assert.equal(hooks.activeCircuits, 1)
    const destination = destinations[0]!
    let atDestination = 0
    destination.addEventListener('message', (evt) => { atDestination += evt.data.byteLength })
    let atSource = 0
    client.addEventListener('message', (evt) => { atSource += evt.data.byteLength })
    client.send(new Uint8Array(1000))
    destination.send(new Uint8Array(10))
    await waitFor(() => atDestination === 1000 && atSource === 10, { timeoutMs: 5000, message: `relayed ${atDestination} / ${atSource}` })
    assert.equal(await metric(/pos_relay_relayed_bytes_total\{direction="to_destination"\} (\d+)/), 1000)
    assert.equal(await metric(/pos_relay_relayed_bytes_total\{direction="to_source"\} (\d+)/), 10)
    hooks.abortCircuits(new Error('relay stopping'))
    assert.equal(hooks.activeCircuits, 0)
    assert.equal(await metric(/pos_relay_circuits_total\{result="opened"\} (\d+)/), 1)
  })

  it('CONNECT to a peer without a reservation: NO_RESERVATION and the stream closed; its slot given back', async () => {
    const { server } = stubServer()
    const { hooks, metric } = install(server, { limits: { ...DEFAULT_LIMITS, max_circuits: 1 } })
    for (let i = 0; i < 2; i++) {
      const { answer, client } = await hop(server, 'CONNECT', await newPeer(), await newPeer())
      assert.equal(answer.status, 'NO_RESERVATION', 'a leaked slot would make the second RESOURCE_LIMIT_EXCEEDED')
      assert.equal(client.remoteWriteStatus, 'closed')
    }
    assert.equal(hooks.activeCircuits, 0)
    assert.equal(await metric(/pos_relay_circuits_total\{result="failed"\} (\d+)/), 2)
  })

  it('with accounts: circuits are metered to the ticket\'s account, and a tick ends them once its quota is used up elsewhere', async () => {
    const { server, reserved } = stubServer()
    const src = await newPeer()
    let remaining = 1_000_000
    const metered: Array<[string, object]> = []
    const accounts: AccountPolicy = {
      identify: (p) => p.equals(src) ? { account: 'acct', tier: { ...DEFAULT_TIERS.free!, monthly_bytes: 10_000_000 } } : undefined,
      admitReservation: async () => true,
      releaseReservation: () => {},
      remainingBytes: async () => remaining,
      meter: (account, delta) => { metered.push([account, delta]) }
    }
    const { hooks, metric } = install(server, { accounts })
    const dst = await newPeer()
    reserved(dst)
    const { answer } = await hop(server, 'CONNECT', src, dst)
    assert.equal(answer.status, 'OK')
    assert.deepEqual(metered[0], ['acct', { circuits: 1 }])
    remaining = 0
    await hooks.tick()
    assert.equal(hooks.activeCircuits, 0)
    assert.equal(await metric(/pos_relay_circuit_ends_total\{reason="quota"\} (\d+)/), 1)
    assert.ok(metered.some(([a, d]) => a === 'acct' && 'circuit_seconds' in d))
  })
})
