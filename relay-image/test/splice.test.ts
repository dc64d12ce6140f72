/**
 * The circuit splice on its own, with stand-in streams where a real pair of
 * connections cannot make the timing deterministic.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Uint8ArrayList } from 'uint8arraylist'
import { RESUME_BELOW_BYTES, spliceStreams, type CircuitEnd } from '../src/splice.ts'

/** The slice of a libp2p Stream the splice uses. */
class StandInStream extends EventTarget {
  readStatus: 'readable' | 'paused' | 'closed' = 'readable'
  maxReadBufferLength = 4 * 1024 * 1024
  aborted?: Error
  /** what send() answers: false = "wait for 'drain'" */
  canSendMore = true
  resumeThrows?: Error
  pause (): void { this.readStatus = 'paused' }
  resume (): void {
    if (this.resumeThrows != null) throw this.resumeThrows
    this.readStatus = 'readable'
  }

  send (_data: Uint8Array): boolean { return this.canSendMore }
  /** bytes waiting in this stream's write buffer (the splice resumes the other side once this is low) */
  writeBufferLength = 0
  abort (err: Error): void { this.aborted ??= err; this.readStatus = 'closed' }
  async close (): Promise<void> {}
  message (bytes: number): void {
    const evt = new Event('message') as Event & { data: Uint8Array }
    evt.data = new Uint8Array(bytes)
    this.dispatchEvent(evt)
  }
}

/**
 * A stand-in with AbstractMessageStream's order in resume() (@libp2p/utils
 * 7.4): readStatus 'readable', then the read backlog dispatched as one
 * 'message', then sendResume(), which for yamux sends a window update.
 * `windowOpen` is what the transport grants the sender.
 */
class BackloggedStream extends StandInStream {
  windowOpen = true
  backlog = 0
  override pause (): void {
    if (this.readStatus === 'paused') return
    this.readStatus = 'paused'
    this.windowOpen = false
  }

  override resume (): void {
    if (this.readStatus === 'readable') return
    this.readStatus = 'readable'
    if (this.backlog > 0) { const n = this.backlog; this.backlog = 0; this.message(n) }
    this.windowOpen = true
  }
}

describe('spliceStreams', () => {
  it('a destination that drains after the paused source\'s connection went away ends the circuit, not the process', async () => {
    const src = new StandInStream()
    const dst = new StandInStream()
    const ends: CircuitEnd[] = []
    spliceStreams(src as any, dst as any, { dataLimit: 0, durationMs: 0, onBytesToDestination: () => {}, onBytesToSource: () => {}, onEnd: (e) => { ends.push(e) } })
    dst.canSendMore = false
    src.message(1000)
    assert.equal(src.readStatus, 'paused')
    // what yamux throws when its connection closed under a paused stream (seen in the NAT lab with a QUIC destination)
    src.resumeThrows = new Error('Cannot write to a stream that is closed')
    let uncaught: unknown
    const onUncaught = (err: unknown): void => { uncaught = err }
    process.prependListener('uncaughtException', onUncaught)
    try {
      dst.dispatchEvent(new Event('drain'))
      await new Promise((resolve) => setImmediate(resolve))
    } finally {
      process.removeListener('uncaughtException', onUncaught)
    }
    assert.equal(uncaught, undefined, `the drain listener threw: ${String(uncaught)}`)
    assert.equal(ends.length, 1)
    assert.equal(ends[0]!.reason, 'error')
    assert.match(ends[0]!.error!.message, /stream that is closed/)
    assert.ok(src.aborted != null && dst.aborted != null, 'both sides aborted')
  })

  it('resumes the source on drain and counts the bytes', () => {
    const src = new StandInStream()
    const dst = new StandInStream()
    let toDst = 0
    spliceStreams(src as any, dst as any, { dataLimit: 0, durationMs: 0, onBytesToDestination: (n) => { toDst += n }, onBytesToSource: () => {}, onEnd: () => {} })
    dst.canSendMore = false
    src.message(10)
    assert.equal(src.readStatus, 'paused')
    dst.dispatchEvent(new Event('drain'))
    assert.equal(src.readStatus, 'readable')
    assert.equal(toDst, 10)
  })

  it('a backlog that fills the other side again on resume leaves the source paused, its window closed', () => {
    const src = new BackloggedStream()
    const dst = new StandInStream()
    spliceStreams(src as any, dst as any, { dataLimit: 0, durationMs: 0, onBytesToDestination: () => {}, onBytesToSource: () => {}, onEnd: () => {} })
    dst.canSendMore = false
    src.message(1000)
    assert.equal(src.readStatus, 'paused')
    assert.equal(src.windowOpen, false)
    // what arrived while paused; the destination drains, but not enough for it
    src.backlog = 64 * 1024
    dst.dispatchEvent(new Event('drain'))
    // resume() delivered the backlog, the destination was full again: a
    // pause made inside resume() was undone by its window update, and the
    // sender went on sending into a stream that read 'paused'
    assert.equal(src.readStatus, 'paused')
    assert.equal(src.windowOpen, false, 'the source\'s window was left open while it is paused')
    // and the next drain resumes it
    dst.canSendMore = true
    dst.dispatchEvent(new Event('drain'))
    assert.equal(src.readStatus, 'readable')
    assert.equal(src.windowOpen, true)
  })

  it('resumes the source only once the destination\'s backlog is down to RESUME_BELOW_BYTES', async () => {
    const src = new StandInStream()
    const dst = new StandInStream()
    spliceStreams(src as any, dst as any, { dataLimit: 0, durationMs: 0, onBytesToDestination: () => {}, onBytesToSource: () => {}, onEnd: () => {} })
    dst.canSendMore = false
    src.message(10)
    assert.equal(src.readStatus, 'paused')
    // yamux drains on every window update, however small: resuming then
    // handed the destination another whole backlog while it held the last one
    dst.writeBufferLength = RESUME_BELOW_BYTES + 1
    dst.dispatchEvent(new Event('drain'))
    await Promise.resolve()
    assert.equal(src.readStatus, 'paused')
    dst.writeBufferLength = RESUME_BELOW_BYTES
    dst.dispatchEvent(new Event('drain'))
    assert.equal(src.readStatus, 'readable')
  })

  it('resumes the source when the destination sends its whole backlog on the drain itself', async () => {
    const src = new StandInStream()
    const dst = new StandInStream()
    // as AbstractMessageStream does: its own 'drain' listener (registered
    // first) sends the write buffer in a microtask; no further 'drain' comes
    dst.addEventListener('drain', () => { queueMicrotask(() => { dst.writeBufferLength = 0 }) })
    spliceStreams(src as any, dst as any, { dataLimit: 0, durationMs: 0, onBytesToDestination: () => {}, onBytesToSource: () => {}, onEnd: () => {} })
    dst.canSendMore = false
    src.message(10)
    dst.writeBufferLength = 4 * RESUME_BELOW_BYTES
    dst.dispatchEvent(new Event('drain'))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(src.readStatus, 'readable', 'the circuit stalled: the source waits for a drain that never comes')
  })

  it('counts what held chunks pin, and copies a small view out of a large buffer before holding it', () => {
    const src = new StandInStream() as StandInStream & { readBuffer: Uint8ArrayList, writeBuffer: Uint8ArrayList }
    const dst = new StandInStream() as StandInStream & { readBuffer: Uint8ArrayList, writeBuffer: Uint8ArrayList }
    // 100 bytes of a 64 KiB socket read, held in a paused stream's read buffer; a full chunk beside it
    const socketRead = new Uint8Array(64 * 1024).fill(7)
    src.readBuffer = new Uint8ArrayList(socketRead.subarray(1000, 1100), new Uint8Array(32 * 1024))
    src.writeBuffer = new Uint8ArrayList()
    dst.readBuffer = new Uint8ArrayList()
    dst.writeBuffer = new Uint8ArrayList()
    const splice = spliceStreams(src as any, dst as any, { dataLimit: 0, durationMs: 0, onBytesToDestination: () => {}, onBytesToSource: () => {}, onEnd: () => {} })
    assert.equal(splice.buffered(), 100 + 32 * 1024)
    const held = [...src.readBuffer]
    assert.equal(held[0]!.buffer.byteLength, 100, 'the small view still pins the whole read')
    assert.deepEqual(held[0], new Uint8Array(100).fill(7))
    assert.equal(src.readBuffer.byteLength, 100 + 32 * 1024)
  })
})
