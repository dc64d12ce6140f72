/**
 * The failover rule (docs/protocol.md section 4, "When a relay fails") with real parts: in-process
 * pos-relay relays on loopback, SDK peers (createRelayPeer) and a real HTTP server serving the relay
 * list the test sets, so a list can be stale on purpose (a dead relay still listed, as until its TTL).
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, afterEach, before, describe, it } from 'node:test'
import { createRelayPeer, rankRelays, type RelayInfo, type RelayManagerEvent, type RelayPeer } from '@pos-relay/client'
import { newConfig, parseConfig, RelayServer, type RelayConfig } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { freePort, waitFor } from '@pos-relay/testing'
import { assertEchoes, serveEcho } from './echo.ts'

const logger = createLogger({ name: 'relay-manager-test', level: process.env.LOG_LEVEL ?? 'silent' })

/** A relay that can die and come back with the same identity and port. */
class TestRelay {
  server?: RelayServer
  readonly config: RelayConfig
  constructor (config: RelayConfig) { this.config = config }
  static async create (): Promise<TestRelay> {
    const base = await newConfig({ p2p_secret: 'test-secret', port: await freePort() })
    return new TestRelay(parseConfig({ ...base, host: '127.0.0.1', quic: false, metrics_host: '127.0.0.1', metrics_port: 0, drain_seconds: 1 }))
  }

  async start (): Promise<void> {
    this.server = new RelayServer({ config: this.config, logger })
    await this.server.start()
  }

  async kill (): Promise<void> {
    await this.server?.stop()
    this.server = undefined
  }

  get info (): RelayInfo {
    return { id: this.config.id, peer_id: this.peerId, addrs: [`/ip4/127.0.0.1/tcp/${this.config.port}/p2p/${this.peerId}`] }
  }

  peerId = ''
}

let server: Server
let url: string
let listed: RelayInfo[] = []
let requests = 0
const relays: TestRelay[] = []
const peers: RelayPeer[] = []

before(async () => {
  server = createServer((_req, res) => {
    requests++
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(listed))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (let i = 0; i < 3; i++) {
    const relay = await TestRelay.create()
    await relay.start()
    relay.peerId = relay.server!.peerId
    relays.push(relay)
  }
})

afterEach(async () => {
  while (peers.length > 0) await peers.pop()!.stop()
  for (const r of relays) if (r.server == null) await r.start()
})

after(async () => {
  for (const r of relays) await r.kill()
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

async function listener (relayCount: number, events: RelayManagerEvent[] = []): Promise<RelayPeer> {
  // random 0: retries after 0.8 x the backoff base, the failure refresh at once
  const peer = await createRelayPeer({ discoveryUrl: url, relayCount, listen: ['/ip4/127.0.0.1/tcp/0'], random: () => 0, onEvent: (e) => events.push(e) })
  peers.push(peer)
  await serveEcho(peer.node)
  return peer
}

/** A dialer made after the failure with the list as it is (still naming dead relays); proves reachability. */
async function reach (target: RelayPeer, relayCount: number): Promise<void> {
  const dialer = await createRelayPeer({ discoveryUrl: url, relayCount, listen: ['/ip4/127.0.0.1/tcp/0'] })
  peers.push(dialer)
  await assertEchoes(await dialer.relays.dial(target.node.peerId))
}

const byPeer = (id: string): TestRelay => relays.find((r) => r.peerId === id)!

describe('RelayManager failover', { timeout: 120_000 }, () => {
  for (const relayCount of [1, 2]) {
    it(`relayCount ${relayCount}: when its first relay dies it reserves on the next one of its ranking at once, and a dialer with the stale list reaches it`, async () => {
      listed = relays.map((r) => r.info)
      const events: RelayManagerEvent[] = []
      const peer = await listener(relayCount, events)
      const ranking = rankRelays(listed, peer.node.peerId.toString()).map((r) => r.peer_id)
      await waitFor(() => ranking.slice(0, relayCount).every((id) => peer.relays.hasReservation(id)), { timeoutMs: 20_000, message: 'first relays not reserved' })
      const before = requests
      const dead = ranking[0]!
      await byPeer(dead).kill()
      // the next relay of the ranking at once: no poll interval (60 s) to wait for
      await waitFor(() => ranking.slice(1, relayCount + 1).every((id) => peer.relays.hasReservation(id)), { timeoutMs: 15_000, message: 'no move to the next relay of the ranking' })
      assert.ok(peer.relays.unusableRelays.includes(dead))
      assert.deepEqual(peer.relays.chosen.map((r) => r.peer_id), ranking.slice(1, relayCount + 1))
      assert.ok(events.some((e) => e.type === 'reservation_lost' && e.relay === dead), 'loss not reported')
      // the failure asked discovery once (the list still names the dead relay: it stays unusable)
      await waitFor(() => requests > before, { timeoutMs: 5_000, message: 'no refresh after the failure' })
      await reach(peer, relayCount)
    })
  }

  it('forgets a relay missing from a fresh list, and moves back make-before-break when its first relay returns', async () => {
    listed = relays.map((r) => r.info)
    const events: RelayManagerEvent[] = []
    const peer = await listener(1, events)
    const ranking = rankRelays(listed, peer.node.peerId.toString()).map((r) => r.peer_id)
    const [first, second] = [ranking[0]!, ranking[1]!]
    await waitFor(() => peer.relays.hasReservation(first), { timeoutMs: 20_000, message: 'first relay not reserved' })
    await byPeer(first).kill()
    await waitFor(() => peer.relays.hasReservation(second), { timeoutMs: 15_000, message: 'no move to the second relay' })

    // the relay comes back: the background retry holds, the listener reserves there, then releases the fallback
    await byPeer(first).start()
    await waitFor(() => peer.relays.hasReservation(first) && !peer.relays.hasReservation(second), { timeoutMs: 30_000, message: 'did not move back' })
    assert.deepEqual(peer.relays.unusableRelays, [])
    const reservedAgain = events.findLastIndex((e) => e.type === 'reserved' && e.relay === first)
    const released = events.findIndex((e) => e.type === 'released' && e.relay === second)
    assert.ok(reservedAgain >= 0 && released > reservedAgain, `the fallback was released before the first relay held: ${JSON.stringify(events.map((e) => e.type))}`)
    await reach(peer, 1)

    // now it dies for good and leaves the list: once a fresh list omits it, it is no longer retried
    await byPeer(first).kill()
    await waitFor(() => peer.relays.unusableRelays.includes(first), { timeoutMs: 15_000, message: 'not marked unusable' })
    listed = relays.filter((r) => r.peerId !== first).map((r) => r.info)
    await peer.relays.refresh()
    assert.deepEqual(peer.relays.unusableRelays, [])
    assert.ok(peer.relays.hasReservation(second))
  })

  it('with every relay gone and back, it reserves again', async () => {
    listed = relays.map((r) => r.info)
    const peer = await listener(2)
    await waitFor(() => peer.relays.circuitAddresses().length > 0, { timeoutMs: 20_000, message: 'no reservation' })
    for (const r of relays) await r.kill()
    await waitFor(() => peer.relays.circuitAddresses().length === 0, { timeoutMs: 10_000, message: 'reservations outlived their relays' })
    // each relay it moves to fails in turn
    await waitFor(() => peer.relays.unusableRelays.length === 3, { timeoutMs: 10_000, message: 'not every relay found unusable' })
    for (const r of relays) await r.start()
    const ranking = rankRelays(listed, peer.node.peerId.toString()).map((r) => r.peer_id)
    await waitFor(() => ranking.slice(0, 2).every((id) => peer.relays.hasReservation(id)), { timeoutMs: 30_000, message: 'did not recover' })
    await reach(peer, 2)
  })
})
