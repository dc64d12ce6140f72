/**
 * Patch (opt-in levers): the per-connection data path under yamux, for
 * @chainsafe/libp2p-noise 17.0.0 over @libp2p/tcp 11.0.28 (both built on
 * @libp2p/utils 7.4.1's AbstractMessageStream).
 *
 * What upstream does per relayed yamux frame (measured in the relay's CPU
 * profile, docs/benchmarks.md "Relay CPU per GiB"):
 * - Noise encrypts every `sendData()` on its own: a 16 KiB frame forwarded
 *   from a rust peer (rust-yamux sends 16 KiB frames) becomes its own Noise
 *   message, with its own cipher object, even when four such frames were
 *   decrypted from one 64 KiB message a moment before;
 * - the encrypted message is a list [length (2 B), ciphertext of the 12-byte
 *   yamux header, ciphertext of the body, tag (16 B)], and TCP's `sendData()`
 *   calls `socket.write()` for each: four syscalls (three of them tiny
 *   segments, TCP_NODELAY) per frame;
 * - decrypting a message that arrived in more than one socket read flattens
 *   it (`chunk.subarray()`, a 64 KiB copy) for a `dst` that Node's crypto
 *   path (messages of 1200 bytes or more) never uses.
 *
 * Levers, each applied to one connection by `patchDataPath(maConn, levers)`
 * where `maConn` is what the muxer is given (the Noise stream, whose
 * `.stream` is the TCP connection). Connections of other shapes (QUIC, no
 * Noise) are left alone.
 * - `writev`: TCP `sendData()` corks the socket around its writes: one
 *   writev per call;
 * - `tickWrites`: TCP keeps the socket corked until the end of the tick (one
 *   writev per tick), reporting backpressure at 1 MiB queued instead of the
 *   socket's 16 KiB high-water mark;
 * - `noiseBatch`: Noise gathers what is sent during one tick and encrypts it
 *   in full-size messages (65519 bytes of plaintext), flushing at once when
 *   a full message is pending, the TCP side is backed up, or on close;
 * - `noiseDecrypt`: large messages are decrypted without the `dst` copy.
 */
import { Uint8ArrayList } from 'uint8arraylist'
import { checkVersion, requireInternal, type UpstreamTarget } from './version.js'

export const NOISE_DATAPATH: UpstreamTarget = { patch: 'noise-tcp-datapath', package: '@chainsafe/libp2p-noise', versions: ['17.0.0'] }
export const TCP_DATAPATH: UpstreamTarget = { patch: 'noise-tcp-datapath', package: '@libp2p/tcp', versions: ['11.0.28'] }
export const UTILS_DATAPATH: UpstreamTarget = { patch: 'noise-tcp-datapath', package: '@libp2p/utils', versions: ['7.4.1'] }

export interface DataPathLevers {
  writev?: boolean
  /** tickWrites: report backpressure once this much is queued on the socket (default TICK_WRITES_HIGH_WATER) */
  tickWritesHighWaterBytes?: number
  tickWrites?: boolean
  noiseBatch?: boolean
  noiseDecrypt?: boolean
}

export const DATAPATH_LEVERS = ['writev', 'tickWrites', 'noiseBatch', 'noiseDecrypt'] as const

/** upstream's constants (@chainsafe/libp2p-noise constants.js) */
const NOISE_MSG_MAX = 65535
const TAG = 16
const NOISE_PLAIN_MAX = NOISE_MSG_MAX - TAG
/** below this, upstream's crypto uses its wasm implementation, which does use `dst` */
const NODE_CRYPTO_MIN_BYTES = 1200
/**
 * tickWrites: backpressure once this much is queued on the socket (upstream:
 * the socket's 16 KiB high-water mark). What sits there has left the streams'
 * buffers: a relay's buffer budget does not see it (relay-image/src/data-path.ts).
 */
export const TICK_WRITES_HIGH_WATER = 1024 * 1024

interface SendResult { sentBytes: number, canSendMore: boolean }
interface Socket {
  write: (b: Uint8Array) => boolean
  cork: () => void
  uncork: () => void
  writableLength: number
  destroyed: boolean
  once: (event: 'close', listener: () => void) => unknown
}
interface TcpConn { socket?: Socket, sendData: (data: Uint8ArrayList) => SendResult }
interface NoiseConn {
  stream?: TcpConn & { writableNeedsDrain?: boolean }
  handshake?: { decrypt: (c: Uint8Array | Uint8ArrayList, dst?: Uint8Array) => Uint8Array | Uint8ArrayList }
  metrics?: { decryptedPackets: { increment: () => void }, decryptErrors: { increment: () => void } }
  sendData: (data: Uint8ArrayList) => SendResult
  decrypt: (chunk: Uint8ArrayList) => Uint8ArrayList
  close: (options?: unknown) => Promise<void>
  sendReset: (err: Error) => void
  writableNeedsDrain?: boolean
  writeStatus?: string
}

/** the levers applied to each patched connection (the muxer's maConn) */
const applied = new WeakMap<object, DataPathLevers>()

/** The levers `patchDataPath` applied to this connection (the muxer's maConn, or the TCP connection under it: a libp2p Connection's `maConn`), or undefined. */
export function appliedDataPath (maConn: unknown): DataPathLevers | undefined {
  return typeof maConn === 'object' && maConn != null ? applied.get(maConn) : undefined
}

let checked = false
function checkVersions (): void {
  if (checked) return
  checkVersion(NOISE_DATAPATH)
  checkVersion(TCP_DATAPATH)
  checkVersion(UTILS_DATAPATH)
  checked = true
}

/** Throws UpstreamChangedError on other versions of the three packages. */
export function checkDataPathVersions (): void { checkVersions() }

/** A TCP connection under the muxer (its socket one level down) must have the internals the levers use. */
function isNoiseOverTcp (c: NoiseConn): boolean {
  if (c.stream?.socket == null) return false
  requireInternal(TCP_DATAPATH, typeof c.stream.sendData === 'function' && typeof c.stream.socket.cork === 'function', 'its connection has no sendData() or socket.cork()')
  requireInternal(NOISE_DATAPATH, c.handshake != null && typeof c.decrypt === 'function' && typeof c.sendData === 'function', 'its encrypted stream has no handshake, decrypt() or sendData()')
  return true
}

/** Applies the chosen levers to one connection; returns whether it was Noise over TCP (else untouched). */
export function patchDataPath (maConn: unknown, levers: DataPathLevers): boolean {
  if (!DATAPATH_LEVERS.some((k) => levers[k] === true)) return false
  checkVersions()
  const conn = maConn as NoiseConn
  if (!isNoiseOverTcp(conn)) return false
  const tcp = conn.stream!
  if (levers.tickWrites === true) tickWrites(tcp, levers.tickWritesHighWaterBytes ?? TICK_WRITES_HIGH_WATER)
  else if (levers.writev === true) writev(tcp)
  if (levers.noiseDecrypt === true) noiseDecrypt(conn)
  if (levers.noiseBatch === true) noiseBatch(conn)
  const on = Object.fromEntries(DATAPATH_LEVERS.filter((k) => levers[k] === true && !(k === 'writev' && levers.tickWrites === true)).map((k) => [k, true]))
  applied.set(conn, on)
  applied.set(tcp, on)
  return true
}

function writev (tcp: TcpConn): void {
  const sendData = tcp.sendData
  const socket = tcp.socket!
  tcp.sendData = function (data) {
    socket.cork()
    try { return sendData.call(this, data) } finally { socket.uncork() }
  }
}

/** upstream's bound on a socket's queue: Node's default writableHighWaterMark, past which write() says "wait" */
const UPSTREAM_HIGH_WATER = 16 * 1024
/** the open sockets under tickWrites, for tickWritesQueuedBytes() */
const tickSockets = new Set<Socket>()

/**
 * Bytes queued on tickWrites sockets beyond upstream's 16 KiB each: the
 * memory the lever adds, outside any stream buffer, for the relay's buffer
 * budget (max_buffered_bytes) to count.
 */
export function tickWritesQueuedBytes (): number {
  let total = 0
  for (const socket of tickSockets) total += Math.max(0, socket.writableLength - UPSTREAM_HIGH_WATER)
  return total
}

function tickWrites (tcp: TcpConn, highWater: number): void {
  const socket = tcp.socket!
  tickSockets.add(socket)
  socket.once('close', () => { tickSockets.delete(socket) })
  let corked = false
  const uncork = (): void => { corked = false; socket.uncork() }
  // upstream's loop, with socket.write()'s verdict (false above 16 KiB queued, which a
  // corked socket always is) replaced by our own high-water mark; 'drain' still comes,
  // since every write past 16 KiB set the socket's needDrain
  tcp.sendData = function (data) {
    if (!corked && !socket.destroyed) { corked = true; socket.cork(); process.nextTick(uncork) }
    let sentBytes = 0
    for (const buf of data) { socket.write(buf); sentBytes += buf.byteLength }
    return { sentBytes, canSendMore: socket.writableLength < highWater }
  }
}

function noiseDecrypt (conn: NoiseConn): void {
  const decrypt = conn.decrypt
  const handshake = conn.handshake!
  conn.decrypt = function (chunk) {
    // upstream's decoder hands one message per call; anything else, or a small one, goes upstream's way
    if (chunk.byteLength > NOISE_MSG_MAX || chunk.byteLength < NODE_CRYPTO_MIN_BYTES) return decrypt.call(this, chunk)
    if (chunk.byteLength < TAG) throw new Error('Invalid chunk')
    try {
      const plaintext = handshake.decrypt(chunk)
      conn.metrics?.decryptedPackets.increment()
      return plaintext instanceof Uint8ArrayList ? plaintext : new Uint8ArrayList(plaintext)
    } catch (e) {
      conn.metrics?.decryptErrors.increment()
      throw e
    }
  }
}

function noiseBatch (conn: NoiseConn): void {
  const sendData = conn.sendData
  const tcp = conn.stream!
  let pending = new Uint8ArrayList()
  let scheduled = false
  const flush = (): boolean => {
    if (pending.byteLength === 0) return true
    const list = pending
    pending = new Uint8ArrayList()
    return sendData.call(conn, list).canSendMore
  }
  const flushLater = (): void => {
    scheduled = false
    if (pending.byteLength === 0 || conn.writeStatus === 'closed') { pending = new Uint8ArrayList(); return }
    try {
      // the Noise stream said "more" for what it held back: if TCP now asks to wait, so does it
      if (!flush()) conn.writableNeedsDrain = true
    } catch (err: any) {
      conn.sendReset(err)
    }
  }
  conn.sendData = function (data) {
    const sentBytes = data.byteLength
    pending.append(data)
    if (pending.byteLength >= NOISE_PLAIN_MAX || tcp.writableNeedsDrain === true) {
      // whole messages now, the tail (if any) at the end of the tick
      const whole = pending.byteLength - (pending.byteLength % NOISE_PLAIN_MAX)
      let canSendMore = true
      if (whole > 0 && whole < pending.byteLength) {
        const head = pending.sublist(0, whole)
        pending.consume(whole)
        canSendMore = sendData.call(conn, head).canSendMore
      } else canSendMore = flush()
      if (pending.byteLength > 0 && !scheduled) { scheduled = true; queueMicrotask(flushLater) }
      return { sentBytes, canSendMore }
    }
    if (!scheduled) { scheduled = true; queueMicrotask(flushLater) }
    return { sentBytes, canSendMore: true }
  }
  const close = conn.close
  conn.close = async function (options) {
    flush()
    return close.call(this, options)
  }
}
