import type { Stream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'

export type CircuitEndReason = 'closed' | 'data_limit' | 'duration_limit' | 'idle_timeout' | 'error'

export interface CircuitEnd {
  reason: CircuitEndReason
  bytesToDestination: number
  bytesToSource: number
  error?: Error
}

export interface SpliceOptions {
  /** bytes in both directions together; 0 = unlimited */
  dataLimit: number
  /** 0 = unlimited */
  durationMs: number
  /** no byte in either direction for this long ends the circuit; 0 = never */
  idleTimeoutMs?: number
  onBytesToDestination: (n: number) => void
  onBytesToSource: (n: number) => void
  onEnd: (end: CircuitEnd) => void
}

/**
 * The largest yamux receive window a stream grants (js yamux's default,
 * 16 MiB). It bounds what a stalled circuit direction holds in memory. The
 * read buffer must take what arrives after a pause: the window granted by the
 * last update plus frames already in flight, so up to two windows.
 */
export const CIRCUIT_WINDOW_BYTES = 16 * 1024 * 1024
const READ_BUFFER_BYTES = 2 * CIRCUIT_WINDOW_BYTES

export class TransferLimitError extends Error {
  override name = 'TransferLimitError'
}

export class DurationLimitError extends Error {
  override name = 'DurationLimitError'
}

export class IdleTimeoutError extends Error {
  override name = 'IdleTimeoutError'
}

/** Largest chunk handed to the other stream: a resumed reader delivers its whole backlog (megabytes) as one message. */
const MAX_CHUNK_BYTES = 64 * 1024

/**
 * A paused side resumes once the other side's backlog is down to this. Resuming
 * on every 'drain' (yamux sends one per window update, however small) handed
 * the other side a whole read backlog each time while it still held the last
 * one, and re-opened the sender's window each time: a stalled circuit's write
 * buffer grew by up to a window per drain.
 */
export const RESUME_BELOW_BYTES = 64 * 1024

/** the smallest receive window a circuit is given, whatever its share of the budget */
export const MIN_CIRCUIT_WINDOW_BYTES = 64 * 1024

/**
 * Sets the receive window a yamux stream grants its sender (yamux grows it up
 * to maxStreamWindowSize). Yamux internals (@chainsafe/libp2p-yamux 8.0.1:
 * YamuxStream.recvWindow and maxStreamWindowSize), used only when present:
 * other streams (QUIC) keep their transport's window.
 */
function setReceiveWindow (stream: Stream, bytes: number): void {
  const s = stream as Stream & { recvWindow?: unknown, maxStreamWindowSize?: unknown }
  if (typeof s.recvWindow !== 'number' || typeof s.maxStreamWindowSize !== 'number') return
  s.maxStreamWindowSize = bytes
  // lowered at once (it takes effect at the next window update: what was
  // granted stays granted); raised, yamux grows it again as traffic allows
  if (s.recvWindow > bytes) s.recvWindow = bytes
}

/**
 * A view holding on to much more memory than it shows. A stream's chunks
 * are views into whatever the transport read (a socket read of up to 64 KiB,
 * decrypted in place): a frame of a few bytes, or half a frame, held in a
 * paused stream pins the whole read. Measured with 64 stalled circuits, the
 * chunks held pinned twice the bytes they showed.
 */
const wasteful = (b: Uint8Array): boolean => b.buffer.byteLength > b.byteLength + 4096

/**
 * Replaces the wasteful chunks of a stream buffer (a Uint8ArrayList) with
 * copies, in place, so what a stalled circuit holds is what it counts.
 * Called on held buffers only (BufferBudget's sampling), so bytes flowing
 * through are never copied.
 */
function compactBuffer (list: Uint8ArrayList): void {
  let waste = false
  for (const b of list) if (wasteful(b)) { waste = true; break }
  if (!waste) return
  const chunks = [...list]
  list.consume(list.byteLength)
  // a copy: chunks are often Node Buffers, whose slice() is a view
  for (const b of chunks) list.append(wasteful(b) ? new Uint8Array(b) : b)
}

/** memory a stream buffer holds: each chunk's backing buffer, not just its view */
function heldBytes (list: Uint8ArrayList): number {
  let n = 0
  for (const b of list) n += Math.max(b.byteLength, b.buffer.byteLength)
  return n
}

/** send() in chunks of at most MAX_CHUNK_BYTES; false if the last send asked to wait for 'drain' */
function sendInChunks (to: Stream, data: Parameters<Stream['send']>[0]): boolean {
  if (data.byteLength <= MAX_CHUNK_BYTES) return to.send(data)
  let ok = true
  for (let offset = 0; offset < data.byteLength; offset += MAX_CHUNK_BYTES) {
    ok = to.send(data.subarray(offset, Math.min(offset + MAX_CHUNK_BYTES, data.byteLength)))
  }
  return ok
}

/** A running circuit, as spliceStreams returns it. */
export interface Splice {
  /** ends the circuit, resetting both streams */
  abort: (reason: Error) => void
  /**
   * memory the relay holds for this circuit: both streams' read and write
   * buffers, counted by their chunks' backing buffers; chunks that pin much
   * more than they show are copied first
   */
  buffered: () => number
  /** holds (true) or lets go (false) reading on both sides, for the relay-wide buffer budget */
  hold: (held: boolean) => void
  /** the receive window each side grants its sender from now on (yamux streams only; BufferBudget sets it) */
  setWindow: (bytes: number) => void
}

/**
 * Joins two streams into a circuit. Each 'message' from one side is sent to
 * the other; when the other side's send buffer is full the reading side is
 * paused (yamux then stops granting window to the sender) until 'drain'. So
 * the relay holds at most the yamux windows' worth of data per circuit, and
 * no async iterators or queues sit between the two streams.
 *
 * A half-close (remote closed its write side) is passed on as a close of the
 * other stream's write side; an error or reset on either side aborts both.
 * Returns the running circuit: abort it, measure and hold its buffers.
 */
export function spliceStreams (src: Stream, dst: Stream, opts: SpliceOptions): Splice {
  let bytesToDestination = 0
  let bytesToSource = 0
  let ended = false
  let closedSides = 0
  let timer: NodeJS.Timeout | undefined
  let idleTimer: NodeJS.Timeout | undefined
  let lastActivity = Date.now()
  /** held by the buffer budget: neither side reads */
  let held = false
  /** sides paused until the other side drains */
  const waitingForDrain = new Set<Stream>()
  /** the side whose resume() is delivering its backlog right now, and whether that backlog filled the other side */
  let resuming: Stream | undefined
  let pauseAfterResume = false

  /**
   * resume() delivers the backlog (our 'message' handler may then find the
   * other side full and pause this side) and only then re-opens the
   * transport's window (yamux: sendResume, a window update). A pause from
   * inside resume() was undone by that: the stream said 'paused' while its
   * sender was granted window after window, all of it landing in the read
   * buffer. So a pause asked for during resume() is made once it returned.
   */
  const resumeSide = (side: Stream): void => {
    resuming = side
    pauseAfterResume = false
    try {
      side.resume()
    } finally {
      resuming = undefined
    }
    if (pauseAfterResume && !ended && side.readStatus === 'readable') side.pause()
  }

  const finish = (reason: CircuitEndReason, error?: Error): void => {
    if (ended) return
    ended = true
    clearTimeout(timer)
    clearTimeout(idleTimer)
    opts.onEnd({ reason, bytesToDestination, bytesToSource, ...(error != null ? { error } : {}) })
  }

  const abort = (err: Error): void => {
    const reason: CircuitEndReason = err instanceof TransferLimitError
      ? 'data_limit'
      : err instanceof DurationLimitError ? 'duration_limit' : err instanceof IdleTimeoutError ? 'idle_timeout' : 'error'
    finish(reason, err)
    src.abort(err)
    dst.abort(err)
  }

  const forward = (from: Stream, to: Stream, count: (n: number) => void): void => {
    from.maxReadBufferLength = Math.max(from.maxReadBufferLength, READ_BUFFER_BYTES)
    // resumes `from` once `to` has sent its backlog down to RESUME_BELOW_BYTES
    const onDrain = (): void => {
      if (ended) return
      if (to.writeBufferLength > RESUME_BELOW_BYTES) {
        // a stream sends its write buffer on 'drain' in a microtask
        // (AbstractMessageStream, queued by its own listener, which runs
        // before ours): look again after it. Then either the buffer is low,
        // or `to` is blocked and drains again later; waiting for that next
        // 'drain' without looking stalled circuits whose buffer had gone
        // out in one go
        queueMicrotask(() => {
          if (ended) return
          if (to.writeBufferLength > RESUME_BELOW_BYTES) to.addEventListener('drain', onDrain, { once: true })
          else resumeAfterDrain()
        })
        return
      }
      resumeAfterDrain()
    }
    const resumeAfterDrain = (): void => {
      waitingForDrain.delete(from)
      if (held || from.readStatus !== 'paused') return
      // 'drain' can come after `from`'s connection went away but before
      // `from` heard of it (a QUIC destination drains asynchronously,
      // when its native write completes): resume() then throws
      // ("Cannot write to a stream that is closed", from yamux's window
      // update), and a throw in an event listener ends the process
      try { resumeSide(from) } catch (err: any) { abort(err) }
    }
    from.addEventListener('message', (evt) => {
      if (ended) return
      const n = evt.data.byteLength
      lastActivity = Date.now()
      count(n)
      if (opts.dataLimit > 0 && bytesToDestination + bytesToSource > opts.dataLimit) {
        abort(new TransferLimitError(`data limit of ${opts.dataLimit} bytes reached`))
        return
      }
      try {
        if (!sendInChunks(to, evt.data)) {
          if (resuming === from) pauseAfterResume = true
          else from.pause()
          if (!waitingForDrain.has(from)) {
            waitingForDrain.add(from)
            to.addEventListener('drain', onDrain, { once: true })
          }
        }
      } catch (err: any) {
        abort(err)
      }
    })
    // `from` may be paused waiting for `to` to drain (or held by the buffer
    // budget); if `to` closes first that 'drain' never comes, and `from` would
    // hold the circuit open forever
    to.addEventListener('close', () => {
      if (!ended && from.readStatus === 'paused') abort(new Error('the other side of the circuit closed while this side waited for it'))
    }, { once: true })
    // 'end', not 'remoteCloseWrite': a paused side hears the remote's
    // half-close at once, while its read buffer may still hold a backlog for
    // `to`; closing `to` then would make the backlog's send() throw and reset
    // the circuit, losing the tail of what the sender sent. 'end' comes once
    // the buffer is delivered (and also after an abort, which has ended the
    // circuit already)
    from.addEventListener('end', () => {
      if (ended || from.remoteWriteStatus !== 'closed') return
      to.close().catch((err: Error) => { abort(err) })
    }, { once: true })
    from.addEventListener('close', (evt) => {
      if (evt.error != null) { abort(evt.error); return }
      if (++closedSides === 2) finish('closed')
    }, { once: true })
  }

  forward(src, dst, (n) => { bytesToDestination += n; opts.onBytesToDestination(n) })
  forward(dst, src, (n) => { bytesToSource += n; opts.onBytesToSource(n) })

  if (opts.durationMs > 0) {
    timer = setTimeout(() => { abort(new DurationLimitError(`duration limit of ${opts.durationMs / 1000} s reached`)) }, opts.durationMs)
    timer.unref()
  }
  // one timer per circuit, re-armed for the rest of the period when it finds
  // traffic since it was set, rather than reset on every message
  const idleMs = opts.idleTimeoutMs ?? 0
  const checkIdle = (): void => {
    const quiet = Date.now() - lastActivity
    if (quiet >= idleMs) { abort(new IdleTimeoutError(`no data for ${idleMs / 1000} s`)); return }
    idleTimer = setTimeout(checkIdle, idleMs - quiet)
    idleTimer.unref()
  }
  if (idleMs > 0) {
    idleTimer = setTimeout(checkIdle, idleMs)
    idleTimer.unref()
  }

  const hold = (on: boolean): void => {
    if (ended || held === on) return
    held = on
    for (const side of [src, dst]) {
      try {
        if (on && side.readStatus === 'readable') side.pause()
        // a side still waiting for the other one's 'drain' stays paused: its drain handler resumes it
        if (!on && side.readStatus === 'paused' && !waitingForDrain.has(side)) resumeSide(side)
      } catch (err: any) {
        // the stream closed under us (see the drain handler)
        abort(err)
        return
      }
    }
  }
  // AbstractMessageStream's buffers (protected there); a stream without them counts its lengths
  const streamBytes = (side: Stream): number => {
    const b = side as Stream & { readBuffer?: Uint8ArrayList, writeBuffer?: Uint8ArrayList }
    let n = 0
    for (const list of [b.readBuffer, b.writeBuffer]) {
      if (list == null) continue
      compactBuffer(list)
      n += heldBytes(list)
    }
    return n + (b.readBuffer == null ? side.readBufferLength ?? 0 : 0) + (b.writeBuffer == null ? side.writeBufferLength ?? 0 : 0)
  }
  const buffered = (): number => streamBytes(src) + streamBytes(dst)
  const setWindow = (bytes: number): void => {
    if (ended) return
    setReceiveWindow(src, bytes)
    setReceiveWindow(dst, bytes)
  }
  return { abort, buffered, hold, setWindow }
}
