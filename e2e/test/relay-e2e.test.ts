/**
 * End to end on loopback with real parts: Debian's redis-server, the
 * `pos-relay` CLI as separate processes (the exact acceptance invocations),
 * plain js-libp2p nodes and the client SDK.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createRelayPeer, isRelayed, type RelayPeer } from '@pos-relay/client'
import { freePort, startRedis, waitFor, type RedisServer } from '@pos-relay/testing'
import { createLibp2p, type Libp2p } from 'libp2p'
import { spawnCli, runCli, type CliProcess } from './helpers/cli.ts'
import { sendToSink, serveSink } from './helpers/transfer.ts'
import { assertHeld, STALL_BOUND, stalledCircuit } from '../../relay-image/test/stalled-circuit.ts'

const SECRET = 'e2e-secret-' + Math.random().toString(36).slice(2)
const TTL = 3
/** the SDK must be reachable again within this after the relay comes back */
const RE_RESERVE_BOUND_MS = 15_000

async function listRelays (url: string): Promise<any[]> {
  const res = await fetch(`${url}/api/p2p/relays`)
  assert.equal(res.status, 200)
  return await res.json() as any[]
}

describe('relay + discovery + SDK, end to end', { timeout: 240_000 }, () => {
  let redis: RedisServer
  let dir: string
  let discovery: CliProcess
  let relay: CliProcess
  let discoveryUrl: string
  let relayPort: number
  let metricsPort: number
  let configFile: string
  const peers: Array<{ stop: () => void | Promise<void> }> = []

  const startRelay = (): CliProcess => spawnCli(['run', '--config', configFile, '--announce', `/ip4/127.0.0.1/tcp/${relayPort}`, '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', '--drain-seconds', '3'])

  before(async () => {
    redis = await startRedis()
    dir = await mkdtemp(join(tmpdir(), 'pos-relay-e2e-'))
    const port = await freePort()
    relayPort = await freePort()
    metricsPort = await freePort()
    configFile = join(dir, 'relay.json')
    discoveryUrl = `http://127.0.0.1:${port}`
    // the acceptance invocations, word for word (P2P_SECRET=S npx pos-relay discovery ...)
    discovery = spawnCli(['discovery', '--port', String(port), '--redis', redis.url, '--ttl', String(TTL)], { env: { P2P_SECRET: SECRET } })
    await discovery.waitForJson((o) => o.event === 'discovery_ready')
    const init = await runCli(['init', '--config', configFile, '--api-url', discoveryUrl, '--port', String(relayPort)], { input: `${SECRET}\n` })
    assert.equal(init.code, 0, init.stderr)
    relay = startRelay()
    await relay.waitForJson((o) => o.event === 'relay_ready')
  })

  after(async () => {
    for (const p of peers) await Promise.resolve(p.stop()).catch(() => {})
    await relay?.kill('SIGKILL')
    await discovery?.kill('SIGKILL')
    await redis?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('lists the relay with full multiaddrs ending in its peer id: the announced TCP address and its QUIC twin', async () => {
    const ready = await relay.waitForJson((o) => o.event === 'relay_ready')
    await waitFor(async () => (await listRelays(discoveryUrl)).length === 1, { timeoutMs: 10_000, message: 'relay never listed' })
    const [entry] = await listRelays(discoveryUrl)
    assert.equal(entry.peer_id, ready.peer_id)
    assert.deepEqual(entry.addrs, [`/ip4/127.0.0.1/tcp/${relayPort}/p2p/${ready.peer_id}`, `/ip4/127.0.0.1/udp/${relayPort}/quic-v1/p2p/${ready.peer_id}`])
  })

  it('its registrations arrive signed by its key: the shared secret alone can neither refresh nor delete the entry (403)', async () => {
    await waitFor(async () => (await listRelays(discoveryUrl)).length === 1, { timeoutMs: 10_000, message: 'relay never listed' })
    const [entry] = await listRelays(discoveryUrl)
    assert.equal(typeof entry.signed_at, 'number', `entry not signed: ${JSON.stringify(entry)}`)
    // a heartbeat later the signed_at has moved on: each heartbeat is signed anew
    await waitFor(async () => (await listRelays(discoveryUrl))[0]?.signed_at > entry.signed_at, { timeoutMs: TTL * 1000 + 2000, message: 'heartbeat not signed' })
    const headers = { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' }
    const hijack = await fetch(`${discoveryUrl}/api/p2p/relays`, { method: 'POST', headers, body: JSON.stringify({ id: entry.id, peer_id: entry.peer_id, addrs: ['/ip4/127.0.0.1/tcp/1'] }) })
    assert.equal(hijack.status, 403, await hijack.text())
    const del = await fetch(`${discoveryUrl}/api/p2p/relays/${entry.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${SECRET}` } })
    assert.equal(del.status, 403, await del.text())
    const [after] = await listRelays(discoveryUrl)
    assert.equal(after.peer_id, entry.peer_id)
    assert.deepEqual(after.addrs, entry.addrs)
  })

  it('an independent js-libp2p client finds the relay, reserves and relays 4 MiB intact', async () => {
    const [entry] = await listRelays(discoveryUrl)
    const relayAddr = multiaddr(entry.addrs[0])
    const make = async (): Promise<Libp2p> => await createLibp2p({
      addresses: { listen: [`${relayAddr}/p2p-circuit`] },
      transports: [tcp(), circuitRelayTransport()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify() }
    })
    const listener = await make()
    const dialer = await createLibp2p({ transports: [tcp(), circuitRelayTransport()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
    peers.push(listener, dialer)
    await serveSink(listener)
    await waitFor(() => listener.getMultiaddrs().some((ma) => ma.toString().includes('/p2p-circuit')), { timeoutMs: 10_000, message: 'no reservation' })
    const conn = await dialer.dial(relayAddr.encapsulate(`/p2p-circuit/p2p/${listener.peerId}`))
    assert.ok(isRelayed(conn))
    const { sent, received } = await sendToSink(conn, 4 * 1024 * 1024)
    assert.deepEqual(received, sent)
    await listener.stop(); await dialer.stop()
  })

  let a: RelayPeer
  let b: RelayPeer
  it('SDK peers reserve through discovery and relay 8 MiB intact; the relay counts the bytes', async () => {
    a = await createRelayPeer({ discoveryUrl, listen: ['/ip4/127.0.0.1/tcp/0'] })
    b = await createRelayPeer({ discoveryUrl, listen: ['/ip4/127.0.0.1/tcp/0'] })
    peers.push(a, b)
    await serveSink(a.node)
    // one relay, reached over TCP, hands out both its addresses: a QUIC
    // dialer can reach this TCP-only peer through the relay's QUIC port
    const circuits = a.relays.circuitAddresses().map(String)
    assert.equal(circuits.length, 2, circuits.join(' '))
    assert.ok(circuits.some((c) => c.includes('/tcp/')) && circuits.some((c) => c.includes('/quic-v1/')), circuits.join(' '))
    const conn = await b.relays.dial(a.node.peerId)
    assert.ok(isRelayed(conn))
    const { sent, received } = await sendToSink(conn, 8 * 1024 * 1024)
    assert.deepEqual(received, sent)
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const bytes = Number(/pos_relay_relayed_bytes_total\{direction="to_destination"\} (\d+)/.exec(metrics)?.[1])
    assert.ok(bytes >= 8 * 1024 * 1024, `relay counted ${bytes} bytes`)
    assert.match(metrics, /pos_relay_reservations_active [1-9]/)
    assert.doesNotMatch(metrics, new RegExp(a.node.peerId.toString()), 'peer ids must never be label values')
  })

  it('a destination that reads nothing holds the sender back (the relay pauses, neither buffers nor resets), then 96 MiB arrive intact', async () => {
    // a hand-made circuit through the relay process (see stalled-circuit.ts):
    // between SDK peers the end-to-end yamux would hold the sender back even
    // through a relay that buffers without bound
    const [entry] = await listRelays(discoveryUrl)
    const plain = async (): Promise<Libp2p> => {
      const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
      peers.push(node)
      return node
    }
    const SIZE = 96 * 1024 * 1024
    const r = await stalledCircuit({ relay: multiaddr(entry.addrs[0]), dialer: await plain(), destination: await plain(), size: SIZE })
    process.stdout.write(`# the sender was held after ${(r.sentWhileStalled / 2 ** 20).toFixed(1)} MiB\n`)
    assertHeld(r, SIZE, STALL_BOUND)
  })

  it('heartbeats keep the relay listed past several TTLs', async () => {
    const deadline = Date.now() + TTL * 3 * 1000
    while (Date.now() < deadline) {
      assert.equal((await listRelays(discoveryUrl)).length, 1)
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  })

  it(`after a relay restart the SDK re-reserves and the peer is reachable again within ${RE_RESERVE_BOUND_MS} ms`, async () => {
    const relayPeerId = (await listRelays(discoveryUrl))[0].peer_id
    await relay.kill('SIGKILL')
    await waitFor(() => !a.relays.hasReservation(relayPeerId), { timeoutMs: 5_000, message: 'reservation not dropped on relay death' })
    relay = startRelay()
    const restarted = Date.now()
    await relay.waitForJson((o) => o.event === 'relay_ready')
    await waitFor(() => a.relays.hasReservation(relayPeerId), { timeoutMs: RE_RESERVE_BOUND_MS, message: 'SDK did not re-reserve' })
    const conn = await b.relays.dial(a.node.peerId)
    const { sent, received } = await sendToSink(conn, 1024 * 1024)
    assert.deepEqual(received, sent)
    const elapsed = Date.now() - restarted
    assert.ok(elapsed < RE_RESERVE_BOUND_MS, `reachable again after ${elapsed} ms`)
    process.stdout.write(`# re-reserved and reachable ${elapsed} ms after relay restart\n`)
  })

  it('SIGKILL: the relay disappears from discovery within its TTL', async () => {
    await waitFor(async () => (await listRelays(discoveryUrl)).length === 1, { timeoutMs: 10_000, message: 'relay not listed' })
    const killedAt = Date.now()
    await relay.kill('SIGKILL')
    await waitFor(async () => (await listRelays(discoveryUrl)).length === 0, { timeoutMs: (TTL + 2) * 1000, intervalMs: 100, message: 'killed relay still listed' })
    const gone = Date.now() - killedAt
    assert.ok(gone <= (TTL + 1) * 1000, `gone after ${gone} ms`)
  })

  it('SIGTERM: the relay deregisters at once and exits 0', async () => {
    relay = startRelay()
    await relay.waitForJson((o) => o.event === 'relay_ready')
    await waitFor(async () => (await listRelays(discoveryUrl)).length === 1, { timeoutMs: 10_000, message: 'relay not listed' })
    const termAt = Date.now()
    relay.child.kill('SIGTERM')
    await waitFor(async () => (await listRelays(discoveryUrl)).length === 0, { timeoutMs: 2_000, intervalMs: 50, message: 'not deregistered within 2 s of SIGTERM' })
    assert.ok(Date.now() - termAt < 2_000)
    assert.equal(await relay.exited, 0)
  })
})
