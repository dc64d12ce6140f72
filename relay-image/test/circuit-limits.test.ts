/**
 * Concurrent-circuit and reservation limits under concurrent requests: a
 * limit must hold when many requests arrive together, not only one after
 * another (the check and the count were several awaits apart).
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { HopStatus } from '@pos-relay/relay'
import { waitFor } from '@pos-relay/testing'
import { connectMessage, hopRequest, RESERVE } from './hop-client.ts'
import { metric, peer, relayAddr, reservedListener, runCleanups, startRelay } from './relay-harness.ts'

afterEach(runCleanups)

const CONCURRENT = 8

async function within (promise: Promise<void>, ms: number, message: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(message)) }, ms) })
  try { await Promise.race([promise, timeout]) } finally { clearTimeout(timer) }
}
const denials = (reason: string): RegExp => new RegExp(`pos_relay_denials_total\\{reason="${reason}"\\} (\\d+)`)

describe('circuit and reservation limits under concurrency', { timeout: 120_000 }, () => {
  it(`max_circuits 1: of ${CONCURRENT} circuits dialed at once exactly one carries data, the others get RESOURCE_LIMIT_EXCEEDED`, async () => {
    const relay = await startRelay({}, { max_circuits: 1 })
    const listener = await reservedListener(relay)
    const target = relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.node.peerId}`)
    const dialers = await Promise.all(Array.from({ length: CONCURRENT }, async () => await peer()))
    // connected to the relay first, so the CONNECTs themselves go out together
    await Promise.all(dialers.map(async (d) => await d.dial(relayAddr(relay))))
    const results = await Promise.allSettled(dialers.map(async (d) => await d.dial(target)))
    const opened = results.filter((r) => r.status === 'fulfilled').map((r) => r.value)
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    for (const r of refused) assert.match(String(r.reason?.message), /RESOURCE_LIMIT_EXCEEDED/)
    for (const conn of opened) {
      const stream = await conn.newStream('/sink/1', { runOnLimitedConnection: true })
      stream.send(new Uint8Array(100))
    }
    await waitFor(() => listener.received() >= 100, { timeoutMs: 10_000, message: 'the open circuit carried no data' })
    assert.equal(opened.length, 1, `${opened.length} circuits opened with max_circuits 1`)
    assert.equal(refused.length, CONCURRENT - 1)
    assert.equal(await metric(relay, denials('circuit_limit')), CONCURRENT - 1)
  })

  it(`max_reservations 1: of ${CONCURRENT} peers reserving at once exactly one gets a reservation`, async () => {
    const relay = await startRelay({}, { max_reservations: 1 })
    const peers = await Promise.all(Array.from({ length: CONCURRENT }, async () => await peer()))
    await Promise.all(peers.map(async (p) => await p.dial(relayAddr(relay))))
    const statuses = await Promise.all(peers.map(async (p) => (await hopRequest(p, relayAddr(relay), RESERVE)).status))
    assert.equal(statuses.filter((s) => s === HopStatus.OK).length, 1, `statuses: ${statuses.join(', ')}`)
    assert.equal(statuses.filter((s) => s === HopStatus.RESERVATION_REFUSED).length, CONCURRENT - 1, `statuses: ${statuses.join(', ')}`)
    assert.equal(await metric(relay, /pos_relay_reservations_active (\d+)/), 1)
  })

  it('peer_max_circuits: CONNECTs sent at once by one peer beyond its cap are refused; a closed circuit frees its slot', async () => {
    const relay = await startRelay({}, { peer_max_circuits: 2 })
    const listener = await reservedListener(relay)
    const dialer = await peer()
    await dialer.dial(relayAddr(relay))
    const replies = await Promise.all(Array.from({ length: 5 }, async () => await hopRequest(dialer, relayAddr(relay), connectMessage(listener.node.peerId))))
    const ok = replies.filter((r) => r.status === HopStatus.OK)
    assert.equal(ok.length, 2, `statuses: ${replies.map((r) => r.status).join(', ')}`)
    assert.equal(replies.filter((r) => r.status === HopStatus.RESOURCE_LIMIT_EXCEEDED).length, 3)
    assert.equal(await metric(relay, denials('peer_circuit_limit')), 3)
    // another peer is not limited by this one's cap
    const other = await peer()
    assert.equal((await hopRequest(other, relayAddr(relay), connectMessage(listener.node.peerId))).status, HopStatus.OK)
    ok[0]!.stream.abort(new Error('done'))
    await waitFor(async () => await metric(relay, /pos_relay_circuits_active (\d+)/) === 2, { timeoutMs: 10_000, message: 'the aborted circuit did not end' })
    assert.equal((await hopRequest(dialer, relayAddr(relay), connectMessage(listener.node.peerId))).status, HopStatus.OK)
  })

  it('ip_max_circuits: CONNECTs sent at once by several peers of one IP beyond its cap are refused', async () => {
    const relay = await startRelay({}, { peer_max_circuits: 0, ip_max_circuits: 2 })
    const listener = await reservedListener(relay)
    const dialers = await Promise.all(Array.from({ length: 4 }, async () => await peer()))
    await Promise.all(dialers.map(async (d) => await d.dial(relayAddr(relay))))
    const statuses = await Promise.all(dialers.map(async (d) => (await hopRequest(d, relayAddr(relay), connectMessage(listener.node.peerId))).status))
    assert.equal(statuses.filter((s) => s === HopStatus.OK).length, 2, `statuses: ${statuses.join(', ')}`)
    assert.equal(statuses.filter((s) => s === HopStatus.RESOURCE_LIMIT_EXCEEDED).length, 2)
    assert.equal(await metric(relay, denials('ip_circuit_limit')), 2)
  })

  it('a CONNECT that fails after taking its slot gives the slot back', async () => {
    const relay = await startRelay({}, { max_circuits: 1 })
    const listener = await reservedListener(relay)
    const dialer = await peer()
    const stranger = await peer()
    assert.equal((await hopRequest(dialer, relayAddr(relay), connectMessage(stranger.peerId))).status, HopStatus.NO_RESERVATION)
    // a CONNECT without a peer
    assert.equal((await hopRequest(dialer, relayAddr(relay), Uint8Array.from([0x08, 0x01]))).status, HopStatus.MALFORMED_MESSAGE)
    assert.equal((await hopRequest(dialer, relayAddr(relay), connectMessage(listener.node.peerId))).status, HopStatus.OK)
  })

  it('circuit_idle_timeout_seconds: a circuit silent in both directions is closed, one carrying data is not', async () => {
    const relay = await startRelay({}, { circuit_idle_timeout_seconds: 1 })
    const quiet = await reservedListener(relay)
    const busy = await reservedListener(relay)
    const dialer = await peer()
    const open = async (listener: { node: { peerId: unknown } }): Promise<any> => {
      const conn = await dialer.dial(relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${String(listener.node.peerId)}`))
      return await conn.newStream('/sink/1', { runOnLimitedConnection: true })
    }
    const quietStream = await open(quiet)
    const busyStream = await open(busy)
    quietStream.send(new Uint8Array(10))
    // the busy circuit sends a little every 200 ms until the quiet one was closed
    const ticker = setInterval(() => { try { busyStream.send(new Uint8Array(10)) } catch {} }, 200)
    try {
      await within(quiet.closed, 10_000, 'the silent circuit was not closed')
      await waitFor(async () => await metric(relay, /pos_relay_circuit_ends_total\{reason="idle_timeout"\} (\d+)/) === 1, { timeoutMs: 5000, message: 'idle_timeout end not counted' })
      // a further idle period on: the busy circuit is still relaying
      const before = busy.received()
      await waitFor(() => busy.received() >= before + 50, { timeoutMs: 5000, message: 'the busy circuit stopped relaying' })
      assert.equal(await metric(relay, /pos_relay_circuits_active (\d+)/), 1)
      assert.equal(quiet.received(), 10)
    } finally {
      clearInterval(ticker)
    }
  })
})
