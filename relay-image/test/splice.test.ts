/**
 * The circuit splice on its own, with stand-in streams where a real pair of
 * connections cannot make the timing deterministic.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { spliceStreams, type CircuitEnd } from '../src/splice.ts'

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
  abort (err: Error): void { this.aborted ??= err; this.readStatus = 'closed' }
  async close (): Promise<void> {}
  message (bytes: number): void {
    const evt = new Event('message') as Event & { data: Uint8Array }
    evt.data = new Uint8Array(bytes)
    this.dispatchEvent(evt)
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
})
