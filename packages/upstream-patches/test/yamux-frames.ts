/** Test helpers: what frames a yamux muxer sends (shared by the patch's test and @pos-relay/shared's). */
import { multiaddrConnectionPair } from '@libp2p/utils'
import type { StreamMuxerFactory } from '@libp2p/interface'

/** yamux frame header (version, type, flags, stream id, length) */
const YAMUX_HEADER_BYTES = 12

/**
 * Opens a stream on the muxer under test and sends `payload` in ONE send()
 * (as a relay does when it hands a backlog to a stream). The other end of
 * the in-memory connection is raw yamux written here, behaving like a
 * rust-libp2p peer whose receive window has grown: it answers the stream's
 * SYN with a 16 MiB window update. Returns every data frame's body length
 * and the bytes received, in order.
 */
export async function sendThrough (factory: StreamMuxerFactory, payload: Uint8Array): Promise<{ frames: number[], received: Buffer }> {
  const [local, remote] = multiaddrConnectionPair()
  const muxer = factory.createStreamMuxer(local)
  const frames: number[] = []
  const chunks: Buffer[] = []
  let pending = Buffer.alloc(0)
  let received = 0
  let acked = false
  const done = Promise.withResolvers<void>()
  remote.addEventListener('message', (evt) => {
    pending = Buffer.concat([pending, Buffer.from(evt.data.subarray())])
    while (pending.length >= YAMUX_HEADER_BYTES) {
      const type = pending[1]
      const streamId = pending.readUInt32BE(4)
      const length = pending.readUInt32BE(8)
      const body = type === 0 ? length : 0
      if (pending.length < YAMUX_HEADER_BYTES + body) break
      if (type === 0) {
        frames.push(length)
        chunks.push(pending.subarray(YAMUX_HEADER_BYTES, YAMUX_HEADER_BYTES + length))
        received += length
        if (!acked) {
          acked = true
          const update = Buffer.alloc(YAMUX_HEADER_BYTES)
          update[0] = 0; update[1] = 1 // version 0, WindowUpdate
          update.writeUInt16BE(0x2, 2) // ACK
          update.writeUInt32BE(streamId, 4)
          update.writeUInt32BE(16 * 1024 * 1024, 8)
          remote.send(update)
        }
        if (received >= payload.byteLength) done.resolve()
      }
      pending = pending.subarray(YAMUX_HEADER_BYTES + body)
    }
  })
  const stream = await muxer.createStream()
  stream.send(payload)
  const timer = setTimeout(() => { done.reject(new Error(`only ${received} of ${payload.byteLength} bytes arrived within 10 s`)) }, 10_000)
  try {
    await done.promise
  } finally {
    clearTimeout(timer)
    stream.abort(new Error('test done'))
    muxer.abort(new Error('test done'))
  }
  return { frames, received: Buffer.concat(chunks) }
}

export function payloadOf (bytes: number): Uint8Array {
  const p = new Uint8Array(bytes)
  for (let i = 0; i < bytes; i++) p[i] = (i * 2654435761) >>> 24
  return p
}
