/**
 * The relay-wide budget for bytes buffered in circuits (limits.max_buffered_bytes),
 * with real peers speaking the relay protocol by hand: a destination that
 * answers STOP and then never reads its stream makes the relay buffer that
 * circuit's data (a js-libp2p listener that stops reading one stream does
 * not: its end-to-end yamux stops the sender instead).
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, it } from 'node:test'
import { pbStream } from '@libp2p/utils'
import { HopStatus } from '@pos-relay/relay'
import { waitFor } from '@pos-relay/testing'
import type { Libp2p } from '@libp2p/interface'
import { connectMessage, hopRequest, RESERVE } from './hop-client.ts'
import { metric, peer, pump, relayAddr, runCleanups, startRelay } from './relay-harness.ts'
import type { RelayServer } from '@pos-relay/relay'

afterEach(runCleanups)

const STOP = '/libp2p/circuit/relay/0.2.0/stop'
/** StopMessage { type: STATUS, status: OK } */
const STOP_OK = Uint8Array.from([0x08, 0x01, 0x20, 100])
const raw = { encode: (b: Uint8Array) => b, decode: (b: Uint8Array | { subarray: () => Uint8Array }) => (b instanceof Uint8Array ? b : b.subarray()) }

/**
 * below what one stalled circuit holds: its source's receive window (the
 * budget's share, at least 64 KiB) plus what waits for the destination
 */
const BUDGET = 32 * 1024
const buffered = /pos_relay_circuit_buffered_bytes (\d+)/

/** A destination with a reservation that accepts circuits by hand; `read: false` never reads them after STOP. */
async function rawDestination (relay: RelayServer, read: boolean): Promise<{ node: Libp2p, received: () => number }> {
  const node = await peer([], { circuitTransport: false })
  let received = 0
  await node.handle(STOP, async (stream) => {
    const pb = pbStream(stream)
    await pb.read(raw)
    await pb.write(STOP_OK, raw)
    const circuit = pb.unwrap()
    if (read) circuit.addEventListener('message', (evt) => { received += evt.data.byteLength })
    else circuit.pause()
  }, { runOnLimitedConnection: true })
  assert.equal((await hopRequest(node, relayAddr(relay), RESERVE)).status, HopStatus.OK)
  return { node, received: () => received }
}

describe('relay-wide buffer budget', { timeout: 120_000 }, () => {
  it('at max_buffered_bytes open circuits stop reading and new circuits are refused; once buffers free up both resume', async () => {
    const relay = await startRelay({}, { max_buffered_bytes: BUDGET })
    const staller = await rawDestination(relay, false)
    const sink = await rawDestination(relay, true)
    const dialer = await peer()
    // opened before the budget fills
    const toSink = await hopRequest(dialer, relayAddr(relay), connectMessage(sink.node.peerId))
    assert.equal(toSink.status, HopStatus.OK)
    const toStaller = await hopRequest(dialer, relayAddr(relay), connectMessage(staller.node.peerId))
    assert.equal(toStaller.status, HopStatus.OK)
    // returns once the stream closes (below)
    const pumping = pump(toStaller.stream, 64 * 1024 * 1024)

    await waitFor(async () => await metric(relay, buffered) >= BUDGET, { timeoutMs: 20_000, message: 'the stalled circuit never filled the budget' })
    const other = await peer()
    assert.equal((await hopRequest(other, relayAddr(relay), connectMessage(sink.node.peerId))).status, HopStatus.RESOURCE_LIMIT_EXCEEDED)
    assert.equal(await metric(relay, /pos_relay_denials_total\{reason="buffer_budget"\} (\d+)/), 1)
    // the open circuit holds its reading while the budget is used up
    toSink.stream.send(new Uint8Array(100))
    await sleep(1000)
    assert.equal(sink.received(), 0, 'a circuit kept reading with the budget used up')

    // the stalled circuit ends: its buffers are freed, reading resumes and circuits are accepted again
    toStaller.stream.abort(new Error('done'))
    await pumping
    await waitFor(() => sink.received() === 100, { timeoutMs: 10_000, message: 'the held circuit did not resume' })
    await waitFor(async () => await metric(relay, buffered) < BUDGET, { timeoutMs: 10_000, message: 'buffers not freed' })
    assert.equal((await hopRequest(other, relayAddr(relay), connectMessage(sink.node.peerId))).status, HopStatus.OK)
  })
})
