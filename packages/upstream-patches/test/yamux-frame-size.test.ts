import { test } from 'node:test'
import assert from 'node:assert/strict'
import { yamux as upstreamYamux } from '@chainsafe/libp2p-yamux'
import { boundFrameSize, YAMUX_FRAME_SIZE } from '@pos-relay/upstream-patches/yamux-frame-size'
import { checkVersion } from '@pos-relay/upstream-patches/version'
import { payloadOf, sendThrough } from './yamux-frames.ts'

const RUST_MAX_FRAME_BODY = 1024 * 1024

// The bug. When this fails, upstream honours maxMessageSize again and the
// patch (and @pos-relay/shared/yamux's wrapper) can go: see UPSTREAM.md.
test('upstream @chainsafe/libp2p-yamux ignores maxMessageSize: frames larger than rust-libp2p accepts (1 MiB)', async () => {
  const { frames, received } = await sendThrough(upstreamYamux({ maxMessageSize: 64 * 1024 })(), payloadOf(8 * 1024 * 1024))
  assert.equal(received.length, 8 * 1024 * 1024)
  assert.ok(Math.max(...frames) > RUST_MAX_FRAME_BODY, `largest upstream frame ${Math.max(...frames)} bytes`)
})

test('patched, no data frame body is larger than the bound', async () => {
  const { frames, received } = await sendThrough(boundFrameSize(upstreamYamux(), 16 * 1024)(), payloadOf(1024 * 1024))
  assert.equal(received.length, 1024 * 1024)
  assert.ok(Math.max(...frames) <= 16 * 1024, `largest frame ${Math.max(...frames)} bytes`)
})

test('the installed version is the one the patch was written for', () => {
  assert.equal(checkVersion(YAMUX_FRAME_SIZE), '8.0.1')
})

test('a muxer without the private _newStream fails loudly, naming the patch', () => {
  const factory = boundFrameSize(() => ({ protocol: '/yamux/1.0.0', createStreamMuxer: () => ({}) }) as any, 1024)()
  assert.throws(() => factory.createStreamMuxer({} as any), /internals changed: its muxer has no _newStream\(\).*yamux-frame-size/)
})
