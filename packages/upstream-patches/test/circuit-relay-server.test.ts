/**
 * The bugs of @libp2p/circuit-relay-v2's relay server that the patch
 * circuit-relay-server works around, shown on the unpatched server (real
 * libp2p nodes on loopback, or upstream's own relay function on in-memory
 * streams). Each test fails once upstream fixes its bug (UPSTREAM.md).
 */
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { pbStream, streamPair } from '@libp2p/utils'
import { createLibp2p, type Libp2p } from 'libp2p'
import { CIRCUIT_RELAY_SERVER, closeHopStream, HopMessage, hopServerInternals } from '@pos-relay/upstream-patches/circuit-relay-server'
import { checkVersion, UpstreamChangedError } from '@pos-relay/upstream-patches/version'

const HOP = '/libp2p/circuit/relay/0.2.0/hop'
const nodes: Libp2p[] = []
afterEach(async () => { while (nodes.length > 0) await nodes.pop()!.stop() })

async function node (opts: Record<string, any> = {}): Promise<Libp2p> {
  const n = await createLibp2p({
    addresses: { listen: opts.listen ?? [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...opts
  })
  nodes.push(n)
  return n
}

async function upstreamRelay (init: Parameters<typeof circuitRelayServer>[0] = {}, opts: Record<string, any> = {}): Promise<Libp2p> {
  return await node({ listen: ['/ip4/127.0.0.1/tcp/0'], services: { identify: identify(), relay: circuitRelayServer(init) }, ...opts })
}

/** Sends RESERVE, returns upstream's decoded answer and the stream. */
async function reserve (client: Libp2p, relay: Libp2p): Promise<{ answer: any, stream: any }> {
  const stream = await client.dialProtocol(relay.getMultiaddrs()[0]!, HOP)
  const hop = pbStream(stream).pb(HopMessage as any)
  await hop.write({ type: 'RESERVE' })
  return { answer: await hop.read({ signal: AbortSignal.timeout(10_000) }), stream: hop.unwrap().unwrap() }
}

test('the installed version is the one the patch was written for; a relay service without the internals fails loudly', () => {
  assert.equal(checkVersion(CIRCUIT_RELAY_SERVER), '4.2.13')
  assert.throws(() => hopServerInternals({ handleReserve () {} }), (err: Error) => err instanceof UpstreamChangedError && /handleConnect\(\) is missing/.test(err.message))
})

// bug 1
test('upstream announces its default duration limit in milliseconds in a field that is in seconds', async () => {
  const relay = await upstreamRelay()
  const { answer } = await reserve(await node(), relay)
  assert.equal(answer.status, 'OK')
  // 2 minutes (upstream's DEFAULT_DURATION_LIMIT), announced as 120000 s (33 hours)
  assert.equal(answer.limit?.duration, 120_000)
})

// bug 4
test('upstream leaves a refused HOP stream open', async () => {
  const relay = await upstreamRelay({}, { connectionGater: { denyInboundRelayReservation: async () => true } })
  const { answer, stream } = await reserve(await node(), relay)
  assert.equal(answer.status, 'PERMISSION_DENIED')
  // upstream closes nothing: after 2 s the relay's side is still writable (a fix closes it within milliseconds)
  await new Promise((resolve) => setTimeout(resolve, 2000))
  assert.equal(stream.remoteWriteStatus, 'writable')
  stream.abort(new Error('test done'))
})

test('closeHopStream half-closes our side, so the client\'s read ends', async () => {
  const [client, relaySide] = await streamPair()
  const hop = pbStream(relaySide)
  await hop.pb(HopMessage as any).write({ type: 'STATUS', status: 'PERMISSION_DENIED' })
  await closeHopStream(hop)
  const chunks: Uint8Array[] = []
  for await (const chunk of client) chunks.push(chunk.subarray())
  assert.equal(HopMessage.decode(Buffer.concat(chunks).subarray(1)).status, 'PERMISSION_DENIED')
  assert.equal(relaySide.writeStatus, 'closed')
})

// bug 2
test('upstream\'s relay function keeps every byte a circuit carried in memory until the circuit ends', async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const { createLimitedRelay } = await import(new URL('./utils.js', import.meta.resolve('@libp2p/circuit-relay-v2')).href)
  const [source, srcAtRelay] = await streamPair()
  const [dstAtRelay, destination] = await streamPair()
  const log = Object.assign(() => {}, { error: () => {}, trace: () => {} })
  createLimitedRelay(srcAtRelay, dstAtRelay, new AbortController().signal, { signal: new AbortController().signal }, { log })
  const TOTAL = 64 * 1024 * 1024
  let received = 0
  const arrived = new Promise<void>((resolve) => {
    destination.addEventListener('message', (evt) => { received += evt.data.byteLength; if (received >= TOTAL) resolve() })
  })
  gc()
  const before = process.memoryUsage().arrayBuffers
  for (let sent = 0; sent < TOTAL; sent += 64 * 1024) {
    if (!source.send(new Uint8Array(64 * 1024))) await new Promise((resolve) => source.addEventListener('drain', resolve, { once: true }))
  }
  await arrived
  gc()
  const retained = process.memoryUsage().arrayBuffers - before
  process.stdout.write(`# upstream relay retained ${(retained / 2 ** 20).toFixed(1)} MiB of ${TOTAL / 2 ** 20} MiB relayed\n`)
  // every byte was delivered and read, yet about all of them are still held
  assert.ok(retained > TOTAL / 2, `retained ${(retained / 2 ** 20).toFixed(1)} MiB after relaying ${TOTAL / 2 ** 20} MiB`)
  source.abort(new Error('test done'))
  destination.abort(new Error('test done'))
})
