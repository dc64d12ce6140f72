import assert from 'node:assert/strict'
import { after, afterEach, describe, it } from 'node:test'
import { createDiscoveryServer, createMemoryStore } from '@pos-relay/discovery'
import { HopStatus } from '@pos-relay/relay'
import { freePort, waitFor } from '@pos-relay/testing'
import { connectMessage, hopRequest, RESERVE } from './hop-client.ts'
import { cleanups, metric, peer, pump, relayAddr, reservedListener, runCleanups, startRelay } from './relay-harness.ts'
import { assertHeld, STALL_BOUND, stalledCircuit } from './stalled-circuit.ts'

afterEach(runCleanups)

describe('relay server', { timeout: 120_000 }, () => {
  it('advertises and enforces the per-circuit data limit', async () => {
    const relay = await startRelay({}, { circuit_data_limit_bytes: 256 * 1024 })
    const listener = await reservedListener(relay)
    const dialer = await peer()
    const conn = await dialer.dial(relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.node.peerId}`))
    // the dialer's view is what remains of the announced limit after the inner Noise handshake
    const remaining = conn.limits?.bytes
    assert.ok(remaining != null && remaining <= 256n * 1024n && remaining > 250n * 1024n, `limit announced to the dialer: ${remaining}`)
    const stream = await conn.newStream('/sink/1', { runOnLimitedConnection: true })
    await pump(stream, 4 * 1024 * 1024)
    await listener.closed
    assert.ok(listener.received() < 256 * 1024, `received ${listener.received()} bytes past a 256 KiB limit`)
    await waitFor(async () => await metric(relay, /pos_relay_circuit_ends_total\{reason="data_limit"\} (\d+)/) === 1, { timeoutMs: 5000, message: 'data_limit end not counted' })
  })

  it('holds the sender back while the destination reads nothing (backpressure), then delivers every byte', async () => {
    // a hand-made circuit (see stalled-circuit.ts): no end-to-end yamux to
    // stop the sender, only the relay's own backpressure
    const relay = await startRelay()
    const SIZE = 96 * 1024 * 1024
    const r = await stalledCircuit({ relay: relayAddr(relay), dialer: await peer([], { circuitTransport: false }), destination: await peer([], { circuitTransport: false }), size: SIZE })
    process.stdout.write(`# TCP: the sender was held after ${(r.sentWhileStalled / 2 ** 20).toFixed(1)} MiB\n`)
    // what the windows in the path can hold: the source connection's yamux
    // stream window (16 MiB at most) plus the relay's read buffer and the
    // destination side's window; far below SIZE
    assertHeld(r, SIZE, STALL_BOUND)
    assert.equal(await metric(relay, /pos_relay_circuit_ends_total\{reason="error"\} (\d+)/), 0)
  })

  it('ends a circuit at the duration limit', async () => {
    const relay = await startRelay({}, { circuit_duration_seconds: 1 })
    const listener = await reservedListener(relay)
    const dialer = await peer()
    // before the dial: the relay's clock starts when the circuit opens, during it
    const opened = Date.now()
    const conn = await dialer.dial(relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.node.peerId}`))
    const stream = await conn.newStream('/sink/1', { runOnLimitedConnection: true })
    stream.send(new Uint8Array(10))
    await listener.closed
    const lived = Date.now() - opened
    assert.ok(lived >= 900 && lived < 5000, `circuit lived ${lived} ms with a 1 s limit`)
    await waitFor(async () => await metric(relay, /pos_relay_circuit_ends_total\{reason="duration_limit"\} (\d+)/) === 1, { timeoutMs: 5000, message: 'duration_limit end not counted' })
  })

  it('refuses a circuit over max_circuits with RESOURCE_LIMIT_EXCEEDED', async () => {
    const relay = await startRelay({}, { max_circuits: 1 })
    const listener = await reservedListener(relay)
    const dialer = await peer()
    const first = await hopRequest(dialer, relayAddr(relay), connectMessage(listener.node.peerId))
    assert.equal(first.status, HopStatus.OK)
    const second = await hopRequest(dialer, relayAddr(relay), connectMessage(listener.node.peerId))
    assert.equal(second.status, HopStatus.RESOURCE_LIMIT_EXCEEDED)
    assert.equal(await metric(relay, /pos_relay_denials_total\{reason="circuit_limit"\} (\d+)/), 1)
    first.stream.abort(new Error('done'))
  })

  it('answers NO_RESERVATION for a peer without a reservation, and MALFORMED_MESSAGE for garbage, and keeps serving', async () => {
    const relay = await startRelay()
    const dialer = await peer()
    const stranger = await peer()
    assert.equal((await hopRequest(dialer, relayAddr(relay), connectMessage(stranger.peerId))).status, HopStatus.NO_RESERVATION)
    // field 1 with a wire type the schema does not allow
    assert.equal((await hopRequest(dialer, relayAddr(relay), Uint8Array.from([0x0d, 1, 2, 3, 4]))).status, HopStatus.MALFORMED_MESSAGE)
    assert.equal((await hopRequest(dialer, relayAddr(relay), RESERVE)).status, HopStatus.OK)
  })

  it('refuses reservations with RESERVATION_REFUSED while draining, lets circuits finish, and is not ready', async () => {
    const relay = await startRelay()
    const listener = await reservedListener(relay)
    const dialer = await peer()
    const conn = await dialer.dial(relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.node.peerId}`))
    const stream = await conn.newStream('/sink/1', { runOnLimitedConnection: true })
    const draining = relay.drain()
    await waitFor(() => relay.isDraining, { timeoutMs: 1000 })
    const ready = await fetch(`http://127.0.0.1:${relay.metricsAddress!.port}/readyz`)
    assert.equal(ready.status, 503)
    const other = await peer()
    assert.equal((await hopRequest(other, relayAddr(relay), RESERVE)).status, HopStatus.RESERVATION_REFUSED)
    // the open circuit still carries data during the drain
    stream.send(new Uint8Array(1000))
    await waitFor(() => listener.received() === 1000, { timeoutMs: 2000, message: 'circuit stopped carrying data while draining' })
    await draining
    assert.equal(relay.activeCircuits, 0)
  })

  it('draining closes the connections of peers holding a reservation without a circuit (they move at once), and keeps the circuit\'s ends', async () => {
    const relay = await startRelay({ drain_seconds: 60 })
    const busy = await reservedListener(relay)
    const idle = await reservedListener(relay)
    const dialer = await peer()
    const conn = await dialer.dial(relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${busy.node.peerId}`))
    const stream = await conn.newStream('/sink/1', { runOnLimitedConnection: true })
    const relayId = relay.libp2p.peerId
    const draining = relay.drain()
    // the open circuit holds the drain for up to 60 s; the idle listener must not wait for that
    await waitFor(() => idle.node.getConnections(relayId).length === 0, { timeoutMs: 10_000, message: 'the idle reservation holder was not disconnected while draining' })
    assert.equal(relay.activeCircuits, 1)
    assert.ok(busy.node.getConnections(relayId).length > 0, 'the circuit\'s destination was disconnected')
    stream.send(new Uint8Array(1000))
    await waitFor(() => busy.received() === 1000, { timeoutMs: 5000, message: 'the circuit stopped carrying data' })
    stream.abort(new Error('done'))
    await conn.close()
    await draining
  })

  it('frees a reservation when its peer disconnects', async () => {
    const relay = await startRelay()
    const listener = await reservedListener(relay)
    assert.equal(await metric(relay, /pos_relay_reservations_active (\d+)/), 1)
    await listener.node.stop()
    await waitFor(async () => await metric(relay, /pos_relay_reservations_active (\d+)/) === 0, { timeoutMs: 5000, message: 'reservation kept after disconnect' })
  })

  it('keeps relaying while discovery is unreachable and registers once it is up', async () => {
    const port = await freePort()
    const relay = await startRelay({ api_url: `http://127.0.0.1:${port}` })
    const listener = await reservedListener(relay)
    assert.ok(listener.node.getMultiaddrs().length > 0)
    await waitFor(async () => await metric(relay, /pos_relay_registration_failures_total (\d+)/) >= 2, { timeoutMs: 10_000, message: 'no failed attempts counted' })
    const store = createMemoryStore()
    const app = await createDiscoveryServer({ store, p2pSecret: 'test-secret', ttlSeconds: 30, logger: false })
    await app.listen({ host: '127.0.0.1', port })
    cleanups.push(async () => { await app.close() })
    await waitFor(async () => (await store.list()).length === 1, { timeoutMs: 40_000, message: 'relay never registered after discovery came up' })
    assert.equal((await store.list())[0]!.peer_id, relay.peerId)
    assert.equal(await metric(relay, /pos_relay_registered (\d+)/), 1)
  })

  it('serves /healthz and Node process metrics', async () => {
    const relay = await startRelay()
    const base = `http://127.0.0.1:${relay.metricsAddress!.port}`
    assert.equal((await fetch(`${base}/healthz`)).status, 200)
    assert.equal((await fetch(`${base}/readyz`)).status, 200)
    const text = await (await fetch(`${base}/metrics`)).text()
    assert.match(text, /process_resident_memory_bytes \d+/)
    assert.match(text, /nodejs_eventloop_lag_seconds/)
    assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405)
  })
})

after(() => {})
