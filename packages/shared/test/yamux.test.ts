import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { yamux as upstreamYamux } from '@chainsafe/libp2p-yamux'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { yamux, DEFAULT_YAMUX_MAX_MESSAGE_BYTES, YAMUX_HEADER_BYTES } from '@pos-relay/shared/yamux'
import type { StreamMuxerFactory } from '@libp2p/interface'

const RUST_MAX_FRAME_BODY = 1024 * 1024

/**
 * Opens a stream on the muxer under test and sends `payload` in ONE send()
 * (as a relay does when it hands a backlog to a stream). The other end of
 * the in-memory connection is raw yamux written here, behaving like a
 * rust-libp2p peer whose receive window has grown: it answers the stream's
 * SYN with a 16 MiB window update. Returns every data frame's body length
 * and the bytes received, in order.
 */
async function sendThrough (factory: StreamMuxerFactory, payload: Uint8Array): Promise<{ frames: number[], received: Buffer }> {
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

function payloadOf (bytes: number): Uint8Array {
  const p = new Uint8Array(bytes)
  for (let i = 0; i < bytes; i++) p[i] = (i * 2654435761) >>> 24
  return p
}

test('our yamux never sends a data frame larger than maxMessageSize, whatever window the peer grants', async () => {
  const payload = payloadOf(8 * 1024 * 1024)
  const { frames, received } = await sendThrough(yamux()(), payload)
  assert.equal(received.length, payload.byteLength)
  assert.equal(createHash('sha256').update(received).digest('hex'), createHash('sha256').update(payload).digest('hex'), 'bytes arrive complete and in order')
  const largest = Math.max(...frames)
  assert.ok(largest <= DEFAULT_YAMUX_MAX_MESSAGE_BYTES - YAMUX_HEADER_BYTES, `largest data frame ${largest} bytes`)
  assert.ok(frames.length >= payload.byteLength / DEFAULT_YAMUX_MAX_MESSAGE_BYTES)
})

test('maxMessageSize is configurable and validated', async () => {
  const { frames } = await sendThrough(yamux({ maxMessageSize: 16 * 1024 })(), payloadOf(1024 * 1024))
  assert.ok(Math.max(...frames) <= 16 * 1024 - YAMUX_HEADER_BYTES)
  assert.throws(() => yamux({ maxMessageSize: 100 }), /at least/)
})

// Why the wrapper exists. When this fails, upstream honours maxMessageSize
// again and @pos-relay/shared/yamux can go back to plain re-export.
test('upstream @chainsafe/libp2p-yamux 8 still sends frames larger than rust-libp2p accepts (1 MiB)', async () => {
  const { frames, received } = await sendThrough(upstreamYamux()(), payloadOf(8 * 1024 * 1024))
  assert.equal(received.length, 8 * 1024 * 1024)
  assert.ok(Math.max(...frames) > RUST_MAX_FRAME_BODY, `largest upstream frame ${Math.max(...frames)} bytes`)
})
