import type { quic as quicFactory, QuicOptions } from '@chainsafe/libp2p-quic'

/**
 * QUIC for js-libp2p is `@chainsafe/libp2p-quic` (quinn in a napi-rs native
 * module), pinned to exactly 2.1.1: the 1.x line was built for
 * `@multiformats/multiaddr` 12 and fails under libp2p 3 with
 * `ma.nodeAddress is not a function` (multiaddr 13 removed nodeAddress()).
 *
 * It is loaded on demand, so a relay started with QUIC off never loads the
 * native module: a platform without a prebuilt binary (only linux-x64-gnu is
 * in this project's lock file) can still run the TCP relay.
 */
export class QuicUnavailableError extends Error {
  override name = 'QuicUnavailableError'
}

type QuicModule = { quic: typeof quicFactory }

let loaded: Promise<QuicModule> | undefined

/** The QUIC transport factory with read backpressure (see below), or a clear error. */
export async function loadQuic (): Promise<QuicModule> {
  loaded ??= (async () => {
    let mod: QuicModule
    try {
      mod = await import('@chainsafe/libp2p-quic')
    } catch (err: any) {
      throw new QuicUnavailableError(`QUIC is on but its native module does not load on ${process.platform}-${process.arch}: ${err.message}. Run with --no-quic (config: "quic": false) to serve TCP only.`)
    }
    await installReadBackpressure()
    return mod
  })()
  return await loaded
}

/** `quic()` with the relay's handshake timeout; everything else is the package's defaults. */
export async function quicTransport (opts: Partial<QuicOptions> = {}): Promise<ReturnType<typeof quicFactory>> {
  const { quic } = await loadQuic()
  return quic(opts)
}

/** The parts of the package's internals the patch touches (2.1.1). */
interface NativeStream { read: (size: number) => Promise<Uint8Array | null>, id: () => unknown }
interface QuicStreamLike {
  id: string | number
  readStatus: string
  readBufferLength: number
  onData: (data: unknown) => void
  sendResume: () => void
  addEventListener: (type: 'close', fn: () => void, opts: { once: true }) => void
  removeEventListener: (type: 'close', fn: () => void) => void
}

/**
 * Makes `pause()` on a QUIC stream stop reading from the connection.
 *
 * In 2.1.1 a QuicStream's sendPause()/sendResume() are empty ("QUIC handles
 * flow control at the transport level") while its read loop keeps calling
 * the native read(): a paused stream goes on receiving, quinn goes on
 * granting flow-control credit, and everything lands in the js read buffer
 * until it passes maxReadBufferLength and the stream is aborted with
 * StreamBufferError (test/quic.test.ts, "pausing a QUIC stream": a directly
 * connected receiver that pauses is aborted within a second, the sender gets
 * "sending stopped by peer"). The relay's splice pauses the source side of
 * a circuit while the destination side is backed up; unpatched, a QUIC
 * source would go on being read into memory up to 32 MiB (the splice's read
 * buffer) and the circuit then be cut (read from the code, not observed:
 * peers whose own end-to-end window is smaller, js yamux's 16 MiB, never
 * get that far), instead of the sender being slowed down as over TCP +
 * yamux; and the relay's memory per circuit would be bounded by the peers'
 * window, not by its own.
 *
 * The patch gates the native read(): while the QuicStream that owns a native
 * stream is paused and holds READ_AHEAD_BYTES or more unread, its next read()
 * waits for resume() (or close). quinn then stops granting credit and the
 * sender stops at the stream window (maxStreamData, 10 MB). Reading on up to
 * READ_AHEAD_BYTES while paused keeps throughput: a QuicStream's send()
 * asks the caller to wait for 'drain' after every write, so the splice pauses
 * its source after every message; gating at zero turned each 4 KiB read into
 * a stop-and-wait round trip (64 MiB relayed at 8 MiB/s instead of 18). The link
 * from native stream to QuicStream is made where the package's read loop
 * leaves it: after each onData() the same loop calls read() on its own
 * native stream synchronously, before anything else can run; the stream id
 * is checked as well.
 */
async function installReadBackpressure (): Promise<void> {
  // the package exports only its index; its modules are siblings of it and
  // are the same module instances when imported by the same URL
  const base = import.meta.resolve('@chainsafe/libp2p-quic')
  const { QuicStream } = await import(new URL('./stream.js', base).href) as { QuicStream: { prototype: QuicStreamLike } }
  const { Stream } = await import(new URL('./napi.js', base).href) as { Stream: { prototype: NativeStream } }
  const proto = QuicStream?.prototype
  const nativeProto = Stream?.prototype
  if (typeof proto?.onData !== 'function' || typeof proto.sendResume !== 'function' || typeof nativeProto?.read !== 'function' || typeof nativeProto.id !== 'function') {
    // a different version of the package: fail loudly rather than relay without backpressure
    throw new QuicUnavailableError('@chainsafe/libp2p-quic is not the 2.1.1 this relay was built against (QuicStream.onData/sendResume or native Stream.read/id missing)')
  }
  if ((proto as any)[PATCHED] === true) return
  ;(proto as any)[PATCHED] = true

  const owners = new WeakMap<NativeStream, QuicStreamLike>()
  const waiting = new WeakMap<QuicStreamLike, () => void>()
  let justDelivered: QuicStreamLike | undefined

  const onData = proto.onData
  proto.onData = function (this: QuicStreamLike, data: unknown) {
    justDelivered = undefined
    onData.call(this, data)
    // only once onData returned normally does the loop go on to read() again
    justDelivered = this
  }

  const sendResume = proto.sendResume
  proto.sendResume = function (this: QuicStreamLike) {
    sendResume.call(this)
    const wake = waiting.get(this)
    waiting.delete(this)
    wake?.()
  }

  const read = nativeProto.read
  nativeProto.read = async function (this: NativeStream, size: number) {
    const candidate = justDelivered
    justDelivered = undefined
    let owner = owners.get(this)
    if (owner == null && candidate != null && String(candidate.id) === String(this.id())) {
      owners.set(this, owner = candidate)
    }
    while (owner != null && owner.readStatus === 'paused' && owner.readBufferLength >= READ_AHEAD_BYTES) {
      const stream = owner
      await new Promise<void>((resolve) => {
        // closed or aborted while paused: read() then fails and the loop ends
        const onClose = (): void => { waiting.delete(stream); resolve() }
        // resumed: drop the close listener, or every pause of a long circuit would leave one behind
        waiting.set(stream, () => { stream.removeEventListener('close', onClose); resolve() })
        stream.addEventListener('close', onClose, { once: true })
      })
    }
    return await read.call(this, Math.max(size, READ_CHUNK_BYTES))
  }
}

const PATCHED = Symbol.for('pos-relay.quic-read-backpressure')
/** what a paused QUIC stream may still read into its js buffer (plus one chunk) */
const READ_AHEAD_BYTES = 1024 * 1024
/**
 * Bytes asked of one native read(). The package asks for 4 KiB: one native
 * call, promise and 'message' event per 4 KiB cost the relay about twice the
 * CPU per GiB of TCP (docs/benchmarks.md, QUIC section); read() returns what quinn
 * has, up to this, so a slow stream still gets its bytes as they come.
 */
const READ_CHUNK_BYTES = 64 * 1024
