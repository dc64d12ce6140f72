/**
 * `--workers 2`: a relay run as a primary and two worker processes (node:cluster),
 * with real js-libp2p peers on loopback. A circuit whose dialer landed on the
 * worker that does not hold the listener's reservation goes through the
 * workers' unix sockets; one that landed on the same worker stays local.
 */
import { afterEach, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { newConfig, parseConfig, RelayCluster } from '@pos-relay/relay'
import { scrapeMetric, waitFor } from '@pos-relay/testing'
import { cleanups, logger, peer, runCleanups } from './relay-harness.ts'
import { connectMessage, HOP, hopRequest, RESERVE, varintFields } from './hop-client.ts'
import { pbStream } from '@libp2p/utils'
import type { Libp2p } from 'libp2p'

afterEach(runCleanups)

async function startCluster (overrides: Record<string, unknown> = {}, limits: Record<string, number> = {}): Promise<RelayCluster> {
  const base = await newConfig({ p2p_secret: 'test-secret', port: 0 })
  const config = parseConfig({ ...base, limits: { ...(base as any).limits, ...limits }, host: '127.0.0.1', metrics_host: '127.0.0.1', metrics_port: 0, quic: false, drain_seconds: 2, ...overrides })
  const relay = new RelayCluster({ config, workers: 2, logger, logLevel: process.env.LOG_LEVEL ?? 'silent' })
  cleanups.push(async () => { await relay.stop() })
  await relay.start()
  return relay
}

const metric = async (relay: RelayCluster, pattern: RegExp): Promise<number> => await scrapeMetric(relay.metricsAddress!.port, pattern)
const CROSS = /pos_relay_cross_worker_circuits_total\{side="dialer"\} (\d+)/
const OPENED = /pos_relay_circuits_total\{result="opened"\} (\d+)/

/** a listener holding a reservation, echoing what it gets on /echo/1 */
async function echoListener (relay: RelayCluster): Promise<Libp2p> {
  const node = await peer([`${relay.addresses[0]!}/p2p-circuit`])
  await node.handle('/echo/1', async (stream) => {
    for await (const chunk of stream) {
      if (!stream.send(chunk)) await new Promise((resolve) => { stream.addEventListener('drain', resolve, { once: true }) })
    }
    await stream.close()
  }, { runOnLimitedConnection: true })
  await waitFor(() => node.getMultiaddrs().some((ma) => ma.toString().includes('/p2p-circuit')), { timeoutMs: 10_000, message: 'no reservation' })
  return node
}

/** a new dialer (a new TCP connection, so the primary hands it to the next worker) sends `bytes` through the circuit and reads them back */
async function echoThroughCircuit (relay: RelayCluster, listener: Libp2p, bytes: number): Promise<void> {
  const dialer = await peer()
  const target = multiaddr(`${relay.addresses[0]!}/p2p-circuit/p2p/${listener.peerId.toString()}`)
  const stream = await dialer.dialProtocol(target, '/echo/1', { runOnLimitedConnection: true })
  const data = randomBytes(bytes)
  const received: Buffer[] = []
  const reading = (async () => { for await (const chunk of stream) received.push(Buffer.from(chunk.subarray())) })()
  for (let off = 0; off < data.length; off += 16 * 1024) {
    if (!stream.send(data.subarray(off, off + 16 * 1024))) await new Promise((resolve) => { stream.addEventListener('drain', resolve, { once: true }) })
  }
  await stream.close()
  await reading
  assert.ok(Buffer.concat(received).equals(data), `echoed ${Buffer.concat(received).length} of ${data.length} bytes, or other bytes`)
  await dialer.stop()
}

test('--workers 2: circuits work whether the dialer lands on the reservation\'s worker or the other one', async () => {
  const relay = await startCluster()
  const listener = await echoListener(relay)
  await waitFor(() => relay.reservationWorker(listener.peerId.toString()) != null, { timeoutMs: 5_000, message: 'the primary never heard of the reservation' })
  let cross = 0
  let same = 0
  for (let i = 0; i < 12 && (cross === 0 || same === 0); i++) {
    const before = await metric(relay, CROSS)
    await echoThroughCircuit(relay, listener, 256 * 1024)
    if (await metric(relay, CROSS) > before) cross++
    else same++
  }
  assert.ok(cross > 0, 'no dialer landed on the other worker in 12 tries')
  assert.ok(same > 0, 'no dialer landed on the reservation\'s worker in 12 tries')
  // one scrape of the primary covers both workers: every circuit is counted once, on the worker that admitted it
  assert.equal(await metric(relay, OPENED), cross + same)
  assert.equal(await metric(relay, /pos_relay_cross_worker_circuits_total\{side="listener"\} (\d+)/), cross)
  const text = await (await fetch(`http://127.0.0.1:${relay.metricsAddress!.port}/metrics`)).text()
  assert.match(text, /pos_relay_reservations_active 1\b/)
})

test('--workers 2: a CONNECT to a peer reserved nowhere is refused NO_RESERVATION, on either worker', async () => {
  const relay = await startCluster()
  const stranger = await peer()
  for (let i = 0; i < 2; i++) {
    const dialer = await peer()
    const target = multiaddr(`${relay.addresses[0]!}/p2p-circuit/p2p/${stranger.peerId.toString()}`)
    await assert.rejects(dialer.dialProtocol(target, '/echo/1', { runOnLimitedConnection: true }), /NO_RESERVATION|reservation/i)
    await dialer.stop()
  }
})

/** reads exactly `n` bytes from a stream's iterator */
async function readBytes (it: AsyncIterator<{ subarray: () => Uint8Array }>, n: number): Promise<number> {
  let got = 0
  while (got < n) {
    const r = await it.next()
    if (r.done === true) break
    got += r.value.subarray().byteLength
  }
  return got
}

test('--workers 2: a drain lets a cross-worker circuit run on (the reservation\'s worker neither hangs up on the listener nor stops first)', async () => {
  const relay = await startCluster({ drain_seconds: 60 })
  const listener = await echoListener(relay)
  const target = multiaddr(`${relay.addresses[0]!}/p2p-circuit/p2p/${listener.peerId.toString()}`)
  let stream
  let dialer!: Libp2p
  for (let i = 0; i < 12 && stream == null; i++) {
    dialer = await peer()
    const before = await metric(relay, CROSS)
    const s = await dialer.dialProtocol(target, '/echo/1', { runOnLimitedConnection: true })
    if (await metric(relay, CROSS) > before) stream = s
    else await dialer.stop()
  }
  assert.ok(stream != null, 'no dialer landed on the other worker in 12 tries')
  const it = stream[Symbol.asyncIterator]()
  stream.send(new Uint8Array(1000))
  assert.equal(await readBytes(it, 1000), 1000)
  const drained = relay.drain()
  await waitFor(async () => await metric(relay, /^pos_relay_draining (\d+)/m) === 2, { timeoutMs: 10_000, message: 'the workers did not start draining' })
  // both workers are draining: the circuit still carries bytes both ways
  stream.send(new Uint8Array(1000))
  assert.equal(await readBytes(it, 1000), 1000)
  await stream.close()
  // the circuit carries the whole relayed connection: it ends when the peers
  // close that (a stream's close is bytes inside it); the drain then ends
  // without waiting for its 60 s
  await dialer.hangUp(listener.peerId)
  await drained
})

const OK = 100
const RESERVATION_REFUSED = 200
const RESOURCE_LIMIT_EXCEEDED = 201

test('--workers 2: max_reservations holds across workers (the primary counts; a refresh counts once; a lost reservation frees its slot)', async () => {
  const relay = await startCluster({}, { max_reservations: 2 })
  const addr = multiaddr(relay.addresses[0]!)
  const peers = [await peer(), await peer(), await peer()]
  const statuses: Array<number | undefined> = []
  // one new TCP connection each: the primary hands them to the workers in turn
  for (const p of peers) statuses.push((await hopRequest(p, addr, RESERVE)).status)
  assert.deepEqual(statuses, [OK, OK, RESERVATION_REFUSED])
  const holders = new Set(peers.slice(0, 2).map((p) => relay.reservationWorker(p.peerId.toString())))
  assert.equal(holders.size, 2, 'the two reservations are not on two workers')
  assert.equal(await metric(relay, /pos_relay_denials_total\{reason="reservation_limit"\} (\d+)/), 1)
  assert.equal(await metric(relay, /pos_relay_reservations_total\{result="refused"\} (\d+)/), 1)
  // a refresh by a peer holding a slot passes and takes no second slot
  assert.equal((await hopRequest(peers[0]!, addr, RESERVE)).status, OK)
  assert.equal((await hopRequest(peers[2]!, addr, RESERVE)).status, RESERVATION_REFUSED)
  assert.equal(relay.slotCounts().reservations, 2)
  // a reservation lost with its peer's connection gives its slot back
  await peers[1]!.stop()
  await waitFor(() => relay.slotCounts().reservations === 1, { timeoutMs: 10_000, message: 'the lost reservation kept its slot' })
  assert.equal((await hopRequest(peers[2]!, addr, RESERVE)).status, OK)
  assert.equal(relay.slotCounts().reservations, 2)
})

for (const [limit, reason] of [['max_circuits', 'circuit_limit'], ['ip_max_circuits', 'ip_circuit_limit']] as const) {
  test(`--workers 2: ${limit} holds across workers (each circuit counted once, by the worker that admitted it; its end frees the slot)`, async () => {
    const relay = await startCluster({}, { [limit]: 2 })
    const listener = await echoListener(relay)
    const target = multiaddr(`${relay.addresses[0]!}/p2p-circuit/p2p/${listener.peerId.toString()}`)
    const open = async (): Promise<Libp2p> => {
      const dialer = await peer()
      await dialer.dialProtocol(target, '/echo/1', { runOnLimitedConnection: true })
      return dialer
    }
    const dialers = [await open(), await open()]
    // two dialers on two workers (one of them cross-worker): per worker, a third would pass
    assert.equal(await metric(relay, /pos_relay_circuits_total\{result="opened"\} (\d+)/), 2)
    assert.equal(await metric(relay, CROSS), 1, 'the two dialers are not on two workers')
    await assert.rejects(open(), /RESOURCE_LIMIT_EXCEEDED/)
    assert.equal(relay.slotCounts().circuits, 2)
    assert.equal(await metric(relay, new RegExp(`pos_relay_denials_total\\{reason="${reason}"\\} (\\d+)`)), 1)
    await dialers[0]!.hangUp(listener.peerId)
    await waitFor(() => relay.slotCounts().circuits === 1, { timeoutMs: 10_000, message: 'the ended circuit kept its slot' })
    await open()
    assert.equal(relay.slotCounts().circuits, 2)
  })
}

const raw = { encode: (b: Uint8Array) => b, decode: (b: Uint8Array | { subarray: () => Uint8Array }) => (b instanceof Uint8Array ? b : b.subarray()) }

test('--workers 2: peer_max_circuits holds across workers (one peer, one connection on each worker)', async () => {
  const relay = await startCluster({}, { peer_max_circuits: 1 })
  const listener = await echoListener(relay)
  const dialer = await peer()
  const addr = multiaddr(relay.addresses[0]!)
  const statuses: Array<number | undefined> = []
  // two connections of one peer (force: a new one each), handed to the workers in turn
  for (let i = 0; i < 2; i++) {
    const connection = await dialer.dial(addr, { force: true })
    const pb = pbStream(await connection.newStream(HOP, { runOnLimitedConnection: true }))
    await pb.write(connectMessage(listener.peerId), raw)
    statuses.push(varintFields(await pb.read(raw, { signal: AbortSignal.timeout(10_000) })).get(5))
  }
  assert.equal(dialer.getConnections().length, 2)
  assert.deepEqual(statuses, [OK, RESOURCE_LIMIT_EXCEEDED])
  assert.equal(await metric(relay, CROSS), 1, 'the first CONNECT was not on the worker without the reservation')
  assert.equal(await metric(relay, /pos_relay_denials_total\{reason="peer_circuit_limit"\} (\d+)/), 1)
})
