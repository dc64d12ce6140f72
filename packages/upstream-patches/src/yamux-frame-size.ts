/**
 * Patch: bounded yamux data frames for @chainsafe/libp2p-yamux 8.0.1.
 *
 * Bug: 8.0.1 ignores its own `maxMessageSize` option (7.x honoured it): a
 * stream sends everything queued, up to its whole send window, as one data
 * frame. rust-libp2p (yamux crate 0.13+, MAX_FRAME_BODY_LEN = 1 MiB) refuses a
 * larger frame body with FrameTooLarge and closes the whole connection.
 *
 * Patch: every stream the muxer makes (its private `_newStream`, which makes
 * inbound and outbound streams alike) gets its `sendData` (the contract every
 * @libp2p/utils AbstractMessageStream implements: send what the window allows,
 * report how much) fed at most `maxBody` bytes at a time.
 */
import { checkVersion, requireInternal, type UpstreamTarget } from './version.js'
import type { StreamMuxerFactory } from '@libp2p/interface'

export const YAMUX_FRAME_SIZE: UpstreamTarget = { patch: 'yamux-frame-size', package: '@chainsafe/libp2p-yamux', versions: ['8.0.1'] }

/** the list type AbstractMessageStream hands to sendData (a Uint8ArrayList) */
interface ByteList {
  byteLength: number
  sublist: (start?: number, end?: number) => ByteList
  consume: (bytes: number) => void
}
interface SendResult { sentBytes: number, canSendMore: boolean }
type SendData = (this: unknown, data: ByteList) => SendResult

/** Wraps a stream's sendData so that each call upstream sees at most maxBody bytes. */
export function limitFrameSize (stream: { sendData: SendData }, maxBody: number): void {
  const sendData = stream.sendData
  requireInternal(YAMUX_FRAME_SIZE, typeof sendData === 'function', 'its streams have no sendData()')
  stream.sendData = function (data: ByteList): SendResult {
    if (data.byteLength <= maxBody) return sendData.call(this, data)
    let sentBytes = 0
    let canSendMore = true
    while (data.byteLength > 0) {
      const piece = data.byteLength > maxBody ? data.sublist(0, maxBody) : data.sublist()
      const pieceBytes = piece.byteLength
      const result = sendData.call(this, piece)
      sentBytes += result.sentBytes
      data.consume(result.sentBytes)
      canSendMore = result.canSendMore
      // window exhausted or muxer saturated: the caller re-queues the rest
      if (!canSendMore || result.sentBytes < pieceBytes) break
    }
    return { sentBytes, canSendMore }
  }
}

/**
 * `createFactory` (upstream's `yamux(init)`) with every stream of every muxer
 * it makes bounded to `maxBody` bytes per data frame. Checks the installed
 * version when called.
 */
export function boundFrameSize (createFactory: () => StreamMuxerFactory, maxBody: number): () => StreamMuxerFactory {
  checkVersion(YAMUX_FRAME_SIZE)
  return () => {
    const factory = createFactory()
    const createStreamMuxer = factory.createStreamMuxer.bind(factory)
    factory.createStreamMuxer = (maConn) => {
      const muxer = createStreamMuxer(maConn) as unknown as { _newStream?: (...args: unknown[]) => { sendData: SendData } }
      const newStream = muxer._newStream
      requireInternal(YAMUX_FRAME_SIZE, typeof newStream === 'function', 'its muxer has no _newStream()')
      // every stream, inbound and outbound, is made here
      muxer._newStream = function (...args: unknown[]) {
        const stream = newStream!.apply(this, args)
        limitFrameSize(stream, maxBody)
        return stream
      }
      return muxer as unknown as ReturnType<typeof createStreamMuxer>
    }
    return factory
  }
}
