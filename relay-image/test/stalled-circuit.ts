/**
 * A circuit whose destination stops reading, built by hand so that nothing
 * but the relay stands between the sender and the stalled reader.
 *
 * Why by hand: between two js-libp2p peers a relayed connection carries its
 * own end-to-end yamux, whose 16 MiB stream window stops the sender when the
 * receiving stream pauses, whatever the relay does. A test written that way
 * passes against a relay that buffers without bound (upstream's `pipe()`).
 * Here the dialer speaks HOP and the destination STOP by hand; the circuit
 * carries raw bytes, and the destination pauses its end of the circuit: only
 * the relay's backpressure (pausing the source stream, so the source
 * connection's flow control stops the sender) can hold the sender back.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { pbStream } from '@libp2p/utils'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { connectMessage, hopRequest, RESERVE } from './hop-client.ts'

export const STOP = '/libp2p/circuit/relay/0.2.0/stop'
/** StopMessage { type: STATUS, status: OK } */
const STOP_OK = Uint8Array.from([0x08, 0x01, 0x20, 100])
const raw = { encode: (b: Uint8Array) => b, decode: (b: Uint8Array | { subarray: () => Uint8Array }) => (b instanceof Uint8Array ? b : b.subarray()) }

/**
 * Answers STOP on `node` by hand (so nothing but the relay holds data back) and hands over each
 * circuit paused: the destination reads nothing until the caller resumes it.
 */
export async function handleStopPaused (node: Libp2p, onCircuit: (circuit: Stream) => void, opts: { maxInboundStreams?: number } = {}): Promise<void> {
  await node.handle(STOP, async (stream) => {
    const pb = pbStream(stream)
    await pb.read(raw)
    await pb.write(STOP_OK, raw)
    const circuit = pb.unwrap()
    circuit.pause()
    onCircuit(circuit)
  }, { runOnLimitedConnection: true, ...opts })
}

export interface StalledCircuitResult {
  /** bytes the sender had handed to its stream when it was held (or when it finished, if it never was) */
  sentWhileStalled: number
  /** the sender finished all `size` bytes while the destination read nothing */
  finishedWhileStalled: boolean
  /** bytes and sha256 of what the destination read once it resumed */
  received: number
  receivedSha256: string
  sentSha256: string
}

/**
 * `destination` must be a node without the circuit relay transport (it
 * answers STOP itself); it reserves at `destinationRelay` (default `relay`,
 * another address of the same relay), `dialer` CONNECTs at `relay`.
 * The destination reserves, the dialer CONNECTs and sends `size` bytes; the
 * destination reads nothing until the sender is held (it has waited for
 * 'drain' for `quietMs` with no progress) or has sent everything, then reads
 * it all. Never throws on the relay's behaviour; the caller asserts on the result.
 */
export async function stalledCircuit (opts: { relay: Multiaddr, destinationRelay?: Multiaddr, dialer: Libp2p, destination: Libp2p, size: number, quietMs?: number }): Promise<StalledCircuitResult> {
  const quietMs = opts.quietMs ?? 2000
  let circuitAtDestination!: (s: Stream) => void
  const destinationStream = new Promise<Stream>((resolve) => { circuitAtDestination = resolve })
  // read nothing yet: the relay must hold the sender back
  await handleStopPaused(opts.destination, circuitAtDestination)
  assert.equal((await hopRequest(opts.destination, opts.destinationRelay ?? opts.relay, RESERVE)).status, 100, 'the destination could not reserve')

  const connect = await hopRequest(opts.dialer, opts.relay, connectMessage(opts.destination.peerId))
  assert.equal(connect.status, 100, 'CONNECT refused')
  const source: Stream = connect.stream
  const atDestination = await destinationStream

  // the destination's side: counts and hashes what it reads once resumed
  const receivedHash = createHash('sha256')
  let received = 0
  let destinationError: Error | undefined
  const destinationDone = new Promise<void>((resolve) => {
    atDestination.addEventListener('message', (evt) => { receivedHash.update(evt.data.subarray()); received += evt.data.byteLength })
    atDestination.addEventListener('remoteCloseWrite', () => { resolve() }, { once: true })
    atDestination.addEventListener('close', (evt) => { destinationError = evt.error; resolve() }, { once: true })
  })

  // the sender: a deterministic pattern, so a lost or reordered chunk shows in the hash
  const sentHash = createHash('sha256')
  let sent = 0
  let lastProgress = Date.now()
  let waitingForDrain = false
  let sendError: Error | undefined
  const sending = (async () => {
    const CHUNK = 64 * 1024
    for (let i = 0; sent < opts.size; i++) {
      const chunk = new Uint8Array(Math.min(CHUNK, opts.size - sent)).fill(i & 0xff)
      sentHash.update(chunk)
      const more = source.send(chunk)
      sent += chunk.byteLength
      lastProgress = Date.now()
      if (!more) {
        waitingForDrain = true
        await new Promise<void>((resolve, reject) => {
          source.addEventListener('drain', () => { resolve() }, { once: true })
          source.addEventListener('close', (evt) => { reject(evt.error ?? new Error('circuit closed while the sender waited for drain')) }, { once: true })
        })
        waitingForDrain = false
      }
    }
    await source.close()
  })().catch((err: Error) => { sendError = err })

  // wait until the sender finished or is held: waiting for 'drain' without progress for quietMs
  let finished = false
  void sending.then(() => { finished = true })
  while (!finished && !(waitingForDrain && Date.now() - lastProgress >= quietMs)) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const sentWhileStalled = sent
  const finishedWhileStalled = finished && sendError == null

  // the destination reads again: everything must arrive
  atDestination.resume()
  await sending
  await destinationDone
  if (destinationError != null) throw new Error(`the destination's end of the circuit failed after ${received} bytes (sent ${sent}, ${sentWhileStalled} while stalled): ${destinationError.message}`)
  if (sendError != null) throw new Error(`the circuit failed after ${sent} bytes: ${sendError.message}`)
  return { sentWhileStalled, finishedWhileStalled, received, receivedSha256: receivedHash.digest('hex'), sentSha256: sentHash.digest('hex') }
}

/**
 * The assertions every stalled-circuit test makes: the sender was held
 * within `bound` bytes while the destination read nothing, and every byte
 * arrived intact once it read again.
 */
export function assertHeld (r: StalledCircuitResult, size: number, bound: number): void {
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`
  assert.ok(!r.finishedWhileStalled, `the sender got all ${mib(size)} out while the destination read nothing: the relay buffered them instead of pausing the sender`)
  assert.ok(r.sentWhileStalled <= bound, `the sender got ${mib(r.sentWhileStalled)} out while the destination read nothing (bound ${mib(bound)})`)
  assert.equal(r.received, size, 'not every byte arrived')
  assert.equal(r.receivedSha256, r.sentSha256, 'the bytes arrived altered')
}

/**
 * What the path may hold while the destination reads nothing: the source
 * connection's stream window (yamux: up to 16 MiB; QUIC: 10 MB), the relay's
 * read buffer for the paused source (two windows, splice.ts) and the
 * destination side's window. Measured with the splice: ~17 MiB over TCP.
 * Stalled tests send twice this, so a relay that buffers instead of pausing
 * lets the whole transfer out.
 */
export const STALL_BOUND = 48 * 1024 * 1024
