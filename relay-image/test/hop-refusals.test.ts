/**
 * A refused HOP request is answered and its stream closed by the relay:
 * upstream leaves it open (UPSTREAM.md, circuit-relay-server bug 4), holding
 * a stream slot and leaving the client waiting for an end that never comes.
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { HopStatus } from '@pos-relay/relay'
import { waitFor } from '@pos-relay/testing'
import { connectMessage, hopRequest, relayEnds, RESERVE } from './hop-client.ts'
import { peer, relayAddr, reservedListener, runCleanups, startRelay } from './relay-harness.ts'

afterEach(runCleanups)

describe('refused HOP requests', { timeout: 120_000 }, () => {
  it('RESERVE while draining: RESERVATION_REFUSED, then the stream ends', async () => {
    const relay = await startRelay({ drain_seconds: 60 })
    const listener = await reservedListener(relay)
    const dialer = await peer()
    // an open circuit keeps the drain going while we ask
    await dialer.dial(relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.node.peerId}`))
    void relay.drain()
    await waitFor(() => relay.isDraining, { timeoutMs: 1000 })
    const { status, stream } = await hopRequest(await peer(), relayAddr(relay), RESERVE)
    assert.equal(status, HopStatus.RESERVATION_REFUSED)
    assert.equal(await relayEnds(stream), true, 'the relay left the refused stream open')
  })

  it('RESERVE over max_reservations (refused by upstream\'s store): the stream ends', async () => {
    const relay = await startRelay({}, { max_reservations: 1 })
    await reservedListener(relay)
    const { status, stream } = await hopRequest(await peer(), relayAddr(relay), RESERVE)
    assert.equal(status, HopStatus.RESERVATION_REFUSED)
    assert.equal(await relayEnds(stream), true, 'the relay left the refused stream open')
  })

  it('RESERVE over the peer rate limit: RESOURCE_LIMIT_EXCEEDED, then the stream ends', async () => {
    const relay = await startRelay({ rate_limits: { peer_reservations_per_minute: 1 } })
    const client = await peer()
    assert.equal((await hopRequest(client, relayAddr(relay), RESERVE)).status, HopStatus.OK)
    const { status, stream } = await hopRequest(client, relayAddr(relay), RESERVE)
    assert.equal(status, HopStatus.RESOURCE_LIMIT_EXCEEDED)
    assert.equal(await relayEnds(stream), true, 'the relay left the refused stream open')
  })

  it('CONNECT to a peer without a reservation: NO_RESERVATION, then the stream ends', async () => {
    const relay = await startRelay()
    const nobody = await peer()
    const { status, stream } = await hopRequest(await peer(), relayAddr(relay), connectMessage(nobody.peerId))
    assert.equal(status, HopStatus.NO_RESERVATION)
    assert.equal(await relayEnds(stream), true, 'the relay left the refused stream open')
  })

  it('CONNECT over max_circuits: RESOURCE_LIMIT_EXCEEDED, then the stream ends', async () => {
    const relay = await startRelay({}, { max_circuits: 1 })
    const listener = await reservedListener(relay)
    const dialer = await peer()
    await dialer.dial(relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.node.peerId}`))
    const over = await hopRequest(dialer, relayAddr(relay), connectMessage(listener.node.peerId))
    assert.equal(over.status, HopStatus.RESOURCE_LIMIT_EXCEEDED)
    assert.equal(await relayEnds(over.stream), true, 'the relay left the refused stream open')
  })
})
