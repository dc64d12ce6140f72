/**
 * The relay serves Circuit Relay v2 over QUIC (UDP) next to TCP: real
 * js-libp2p nodes with @chainsafe/libp2p-quic reserve and relay over it on
 * loopback.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createSocket } from 'node:dgram'
import { afterEach, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { effectiveAnnounce, listenAddresses, newConfig, parseConfig, quicTransport, quicTwin, RelayServer } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { waitFor, scrapeMetric } from '@pos-relay/testing'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { Connection, Stream } from '@libp2p/interface'
import { assertHeld, STALL_BOUND, stalledCircuit } from './stalled-circuit.ts'

const logger = createLogger({ name: 'relay-quic-test', level: process.env.LOG_LEVEL ?? 'silent' })
const cleanups: Array<() => unknown> = []
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!() })

async function startRelay (overrides: Record<string, unknown> = {}): Promise<RelayServer> {
  const base = await newConfig({ p2p_secret: 'test-secret', port: 0 })
  const config = parseConfig({ ...base, host: '127.0.0.1', metrics_host: '127.0.0.1', metrics_port: 0, drain_seconds: 1, ...overrides })
  const relay = new RelayServer({ config, logger })
  await relay.start()
  cleanups.push(async () => { await relay.stop() })
  return relay
}

/** A js-libp2p peer: QUIC to reach the relay, Noise + Yamux for the relayed connection inside the circuit. */
/** `circuitTransport: false`: a peer that speaks the relay protocols by hand */
async function peer (opts: { listen?: string[], transport: 'quic' | 'tcp', circuitTransport?: boolean }): Promise<Libp2p> {
  const base = opts.transport === 'quic' ? await quicTransport() : tcp()
  const node = await createLibp2p({
    addresses: { listen: opts.listen ?? [] },
    transports: opts.circuitTransport === false ? [base] : [base, circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  })
  cleanups.push(async () => { await node.stop() })
  return node
}

const quicAddr = (relay: RelayServer): Multiaddr => multiaddr(relay.addresses.find((a) => a.includes('/quic-v1'))!)
const tcpAddr = (relay: RelayServer): Multiaddr => multiaddr(relay.addresses.find((a) => a.includes('/tcp/'))!)
const metric = async (relay: RelayServer, pattern: RegExp): Promise<number> => await scrapeMetric(relay.metricsAddress!.port, pattern)

const SINK = '/pos-relay-test/sink/1.0.0'

/** Hashes what arrives and replies `{bytes, sha256}` once the sender half-closes. */
async function serveSink (node: Libp2p): Promise<void> {
  await node.handle(SINK, async (stream) => {
    const hash = createHash('sha256')
    let bytes = 0
    for await (const chunk of stream) { hash.update(chunk.subarray()); bytes += chunk.byteLength }
    stream.send(new TextEncoder().encode(JSON.stringify({ bytes, sha256: hash.digest('hex') })))
    await stream.close()
  }, { runOnLimitedConnection: true })
}

async function waitForDrain (stream: Stream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    stream.addEventListener('drain', () => { resolve() }, { once: true })
    stream.addEventListener('close', (evt) => { reject(evt.error ?? new Error('stream closed while waiting for drain')) }, { once: true })
  })
}

async function sendToSink (conn: Connection, size: number): Promise<{ sent: string, received: { bytes: number, sha256: string } }> {
  const stream = await conn.newStream(SINK, { runOnLimitedConnection: true })
  const hash = createHash('sha256')
  for (let sent = 0; sent < size; sent += 64 * 1024) {
    const chunk = randomBytes(Math.min(64 * 1024, size - sent))
    hash.update(chunk)
    if (!stream.send(chunk)) await waitForDrain(stream)
  }
  await stream.close()
  let reply = ''
  for await (const chunk of stream) reply += new TextDecoder().decode(chunk.subarray())
  return { sent: hash.digest('hex'), received: JSON.parse(reply) }
}

/** The listener's connection to the relay, to check which transport carries the reservation. */
const connectionTo = (node: Libp2p, relay: RelayServer): Connection | undefined =>
  node.getConnections().find((c) => c.remotePeer.toString() === relay.peerId)

describe('relay over QUIC', { timeout: 120_000 }, () => {
  it('listens on TCP and on UDP (QUIC), with port 0 on two different bound ports, TCP announced first', async () => {
    const relay = await startRelay()
    const [first, second, ...rest] = relay.addresses
    assert.equal(rest.length, 0, relay.addresses.join(' '))
    assert.match(first!, new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${relay.peerId}$`))
    assert.match(second!, new RegExp(`^/ip4/127\\.0\\.0\\.1/udp/\\d+/quic-v1/p2p/${relay.peerId}$`))
    // the UDP port really is bound: a second bind of it fails
    const udpPort = Number(quicAddr(relay).getComponents().find((c) => c.name === 'udp')!.value)
    assert.ok(udpPort > 0)
    const socket = createSocket('udp4')
    await assert.rejects(new Promise<void>((resolve, reject) => { socket.once('error', reject); socket.bind(udpPort, '127.0.0.1', resolve) }), /EADDRINUSE/)
    socket.close()
  })

  it('a QUIC listener reserves over QUIC and a QUIC dialer relays 8 MiB intact through it; the relay counts the bytes', async () => {
    const relay = await startRelay()
    const listener = await peer({ transport: 'quic', listen: [`${quicAddr(relay)}/p2p-circuit`] })
    await serveSink(listener)
    await waitFor(() => listener.getMultiaddrs().some((ma) => ma.toString().includes('/p2p-circuit')), { timeoutMs: 10_000, message: 'no reservation over QUIC' })
    assert.match(String(connectionTo(listener, relay)?.remoteAddr), /\/udp\/\d+\/quic-v1/)
    // the reservation hands out the relay's QUIC address too
    assert.ok(listener.getMultiaddrs().some((ma) => ma.toString().includes('/quic-v1/p2p/') && ma.toString().includes('/p2p-circuit')), listener.getMultiaddrs().join(' '))

    const dialer = await peer({ transport: 'quic' })
    const conn = await dialer.dial(quicAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.peerId}`))
    assert.ok(conn.remoteAddr.toString().includes('/quic-v1/') && conn.remoteAddr.toString().includes('/p2p-circuit'), conn.remoteAddr.toString())
    const SIZE = 8 * 1024 * 1024
    const { sent, received } = await sendToSink(conn, SIZE)
    assert.deepEqual(received, { bytes: SIZE, sha256: sent })
    assert.ok(await metric(relay, /pos_relay_relayed_bytes_total\{direction="to_destination"\} (\d+)/) >= SIZE)
    assert.equal(await metric(relay, /pos_relay_circuits_total\{result="opened"\} (\d+)/), 1)
  })

  it('bridges transports: a TCP dialer reaches a listener that reserved over QUIC', async () => {
    const relay = await startRelay()
    const listener = await peer({ transport: 'quic', listen: [`${quicAddr(relay)}/p2p-circuit`] })
    await serveSink(listener)
    await waitFor(() => listener.getMultiaddrs().some((ma) => ma.toString().includes('/p2p-circuit')), { timeoutMs: 10_000, message: 'no reservation over QUIC' })
    const dialer = await peer({ transport: 'tcp' })
    const conn = await dialer.dial(tcpAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.peerId}`))
    const { sent, received } = await sendToSink(conn, 1024 * 1024)
    assert.deepEqual(received, { bytes: 1024 * 1024, sha256: sent })
  })

  it('a destination that reads nothing holds a QUIC sender back (backpressure through the relay), and every byte arrives', async () => {
    // a hand-made circuit (see stalled-circuit.ts): the dialer reaches the
    // relay over QUIC and nothing but the relay stands between it and the
    // stalled destination. Without our read backpressure for QUIC streams
    // (quic.ts) the relay's pause() of the QUIC source does not stop reading:
    // the sender goes on until the relay's read buffer overflows and the
    // circuit is reset
    const relay = await startRelay()
    const SIZE = 96 * 1024 * 1024
    const r = await stalledCircuit({
      relay: quicAddr(relay),
      destinationRelay: tcpAddr(relay),
      dialer: await peer({ transport: 'quic', circuitTransport: false }),
      destination: await peer({ transport: 'tcp', circuitTransport: false }),
      size: SIZE
    })
    process.stdout.write(`# QUIC: the sender was held after ${(r.sentWhileStalled / 2 ** 20).toFixed(1)} MiB\n`)
    assertHeld(r, SIZE, STALL_BOUND)
    assert.equal(await metric(relay, /pos_relay_circuit_ends_total\{reason="error"\} (\d+)/), 0)
  })

  it('pausing a QUIC stream stops its sender (our read backpressure for @chainsafe/libp2p-quic), and resuming delivers every byte', async () => {
    // Directly connected QUIC peers: here the libp2p stream IS the QUIC
    // stream. Unpatched, pause() does not stop reading: the paused stream's
    // read buffer passes its 4 MiB limit and the stream is aborted
    // (StreamBufferError), which is what the relay's splice would do to a
    // circuit whose destination is slower than its source.
    const b = await peer({ transport: 'quic', listen: ['/ip4/127.0.0.1/udp/0/quic-v1'] })
    const a = await peer({ transport: 'quic' })
    const SIZE = 64 * 1024 * 1024
    let received = 0
    let aborted: Error | undefined
    let paused!: (s: Stream) => void
    const pausedStream = new Promise<Stream>((resolve) => { paused = resolve })
    let finished!: () => void
    const done = new Promise<void>((resolve) => { finished = resolve })
    await b.handle('/hold/1', (stream) => {
      stream.addEventListener('message', (evt) => {
        received += evt.data.byteLength
        if (stream.readStatus !== 'paused' && received < 1024 * 1024) { stream.pause(); paused(stream) }
      })
      stream.addEventListener('close', (evt) => { aborted = evt.error; finished() })
      stream.addEventListener('remoteCloseWrite', () => { finished() })
    })
    const stream = await a.dialProtocol(b.getMultiaddrs()[0]!, '/hold/1')
    let sent = 0
    const sending = (async () => {
      const chunk = new Uint8Array(64 * 1024)
      for (; sent < SIZE; sent += chunk.length) if (!stream.send(chunk)) await waitForDrain(stream)
      await stream.close()
    })()
    const held = await pausedStream
    await new Promise((resolve) => setTimeout(resolve, 2000))
    const sentWhilePaused = sent
    await new Promise((resolve) => setTimeout(resolve, 1000))
    assert.equal(aborted, undefined, `paused stream aborted: ${aborted?.message}`)
    assert.ok(held.readBufferLength <= 1024 * 1024 + 64 * 1024, `paused stream buffered ${held.readBufferLength} bytes`)
    assert.equal(sent, sentWhilePaused, 'the sender kept sending while the receiver was paused')
    assert.ok(sent < 32 * 1024 * 1024, `sender got ${sent} bytes out while the receiver was paused`)
    process.stdout.write(`# paused QUIC stream: sender stopped after ${(sent / 2 ** 20).toFixed(1)} MiB, receiver buffered ${(held.readBufferLength / 2 ** 20).toFixed(2)} MiB\n`)
    held.resume()
    await sending
    await done
    assert.equal(aborted, undefined)
    assert.equal(received, SIZE)
  })

  it('with quic off, listens and announces TCP only', async () => {
    const relay = await startRelay({ quic: false })
    assert.deepEqual(relay.addresses.map((a) => a.split('/').slice(0, 4).join('/')), ['/ip4/127.0.0.1/tcp'])
    assert.ok(relay.libp2p.getMultiaddrs().every((ma) => !ma.toString().includes('/udp/')))
  })

  it('announces the QUIC twin of each announced TCP address, or exactly the list when it names a QUIC address', async () => {
    const relay = await startRelay({ announce: ['/ip4/203.0.113.7/tcp/7373', '/dns4/relay.example.com/tcp/443'] })
    assert.deepEqual(relay.addresses, [
      `/ip4/203.0.113.7/tcp/7373/p2p/${relay.peerId}`,
      `/dns4/relay.example.com/tcp/443/p2p/${relay.peerId}`,
      `/ip4/203.0.113.7/udp/7373/quic-v1/p2p/${relay.peerId}`,
      `/dns4/relay.example.com/udp/443/quic-v1/p2p/${relay.peerId}`
    ])
    const explicit = await startRelay({ announce: ['/ip4/203.0.113.7/tcp/7373', '/ip4/203.0.113.7/udp/7474/quic-v1'] })
    assert.deepEqual(explicit.addresses, [
      `/ip4/203.0.113.7/tcp/7373/p2p/${explicit.peerId}`,
      `/ip4/203.0.113.7/udp/7474/quic-v1/p2p/${explicit.peerId}`
    ])
  })

  it('derives listen addresses and QUIC twins for IPv4, IPv6 and DNS, and leaves other addresses alone', () => {
    assert.deepEqual(listenAddresses({ host: '::', port: 7373, quic: true }), ['/ip6/::/tcp/7373', '/ip6/::/udp/7373/quic-v1'])
    assert.deepEqual(listenAddresses({ host: '0.0.0.0', port: 7373, quic: false }), ['/ip4/0.0.0.0/tcp/7373'])
    assert.equal(quicTwin('/ip6/2001:db8::1/tcp/443'), '/ip6/2001:db8::1/udp/443/quic-v1')
    assert.equal(quicTwin('/dns/relay.example.com/tcp/7373/p2p/12D3KooWJpbc9ZbGctyXPrPC3W7qxYCqn3QDEUxJfnnvbUHsqqrD'), '/dns/relay.example.com/udp/7373/quic-v1/p2p/12D3KooWJpbc9ZbGctyXPrPC3W7qxYCqn3QDEUxJfnnvbUHsqqrD')
    // not a plain TCP address: no twin (a websocket port says nothing about UDP)
    assert.equal(quicTwin('/ip4/203.0.113.7/tcp/443/ws'), undefined)
    assert.equal(quicTwin('/ip4/203.0.113.7/udp/7373/quic-v1'), undefined)
    assert.deepEqual(effectiveAnnounce({ announce: ['/ip4/203.0.113.7/tcp/443/ws'], quic: true }), ['/ip4/203.0.113.7/tcp/443/ws'])
    assert.deepEqual(effectiveAnnounce({ announce: ['/ip4/203.0.113.7/tcp/7373'], quic: false }), ['/ip4/203.0.113.7/tcp/7373'])
  })

  it('fails to start, naming the address, when the UDP port is taken', async () => {
    const socket = createSocket('udp4')
    await new Promise<void>((resolve) => { socket.bind(0, '127.0.0.1', resolve) })
    cleanups.push(() => { socket.close() })
    const port = socket.address().port
    const base = await newConfig({ p2p_secret: 'test-secret', port })
    const relay = new RelayServer({ config: parseConfig({ ...base, host: '127.0.0.1', metrics_host: '127.0.0.1', metrics_port: 0 }), logger })
    await assert.rejects(relay.start(), (err: Error) => {
      assert.match(err.message, new RegExp(`/ip4/127\\.0\\.0\\.1/udp/${port}/quic-v1`))
      return true
    })
    await relay.stop().catch(() => {})
  })
})
