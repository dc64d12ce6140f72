/**
 * Patch: read backpressure for @chainsafe/libp2p-quic 2.1.1 (process-wide:
 * it patches the package's QuicStream and native Stream prototypes once).
 * Loaded on demand by whoever loads QUIC; this module never imports the
 * package's native module itself.
 */
import { checkVersion, requireInternal, type UpstreamTarget } from './version.js'

export const QUIC_READ_BACKPRESSURE: UpstreamTarget = { patch: 'quic-read-backpressure', package: '@chainsafe/libp2p-quic', versions: ['2.1.1'] }

/** The parts of the package's internals the patch touches. */
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
 * StreamBufferError (test/quic-read-backpressure.test.ts here shows it on the
 * unpatched package; relay-image/test/quic.test.ts, "pausing a QUIC stream",
 * that the patch holds the sender back). The relay's splice pauses the source side of
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
export async function installQuicReadBackpressure (): Promise<void> {
  checkVersion(QUIC_READ_BACKPRESSURE)
  // the package exports only its index; its modules are siblings of it and
  // are the same module instances when imported by the same URL
  const base = import.meta.resolve('@chainsafe/libp2p-quic')
  const { QuicStream } = await import(new URL('./stream.js', base).href) as { QuicStream: { prototype: QuicStreamLike } }
  const { Stream } = await import(new URL('./napi.js', base).href) as { Stream: { prototype: NativeStream } }
  const proto = QuicStream?.prototype
  const nativeProto = Stream?.prototype
  // a different build of the package: fail loudly rather than relay without backpressure
  requireInternal(QUIC_READ_BACKPRESSURE, typeof proto?.onData === 'function' && typeof proto.sendResume === 'function', 'QuicStream.onData/sendResume missing')
  requireInternal(QUIC_READ_BACKPRESSURE, typeof nativeProto?.read === 'function' && typeof nativeProto.id === 'function', 'native Stream.read/id missing')
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
