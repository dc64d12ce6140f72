import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { yamux, DEFAULT_YAMUX_MAX_MESSAGE_BYTES, YAMUX_HEADER_BYTES } from '@pos-relay/shared/yamux'
import { payloadOf, sendThrough } from '../../upstream-patches/test/yamux-frames.ts'

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
