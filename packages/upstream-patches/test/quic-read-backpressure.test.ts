/**
 * The bug the patch quic-read-backpressure works around, on the unpatched
 * @chainsafe/libp2p-quic (this file never installs the patch before the bug
 * test; node's test runner gives each file its own process). The patch's own
 * effect is tested through the relay: relay-image/test/quic.test.ts, "pausing
 * a QUIC stream".
 */
import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'
import { quic } from '@chainsafe/libp2p-quic'
import { createLibp2p, type Libp2p } from 'libp2p'
import { installQuicReadBackpressure, QUIC_READ_BACKPRESSURE } from '@pos-relay/upstream-patches/quic-read-backpressure'
import { checkVersion } from '@pos-relay/upstream-patches/version'
import type { Stream } from '@libp2p/interface'

const nodes: Libp2p[] = []
afterEach(async () => { while (nodes.length > 0) await nodes.pop()!.stop() })

async function quicNode (listen: string[] = []): Promise<Libp2p> {
  const node = await createLibp2p({ addresses: { listen }, transports: [quic()] })
  nodes.push(node)
  return node
}

// When this fails, pause() on a QUIC stream stops its reading upstream and the patch can go (UPSTREAM.md).
test('upstream: a paused QUIC stream goes on reading until its buffer overflows and it is aborted', async () => {
  const receiver = await quicNode(['/ip4/127.0.0.1/udp/0/quic-v1'])
  const sender = await quicNode()
  const aborted = Promise.withResolvers<Error | undefined>()
  let held: Stream | undefined
  await receiver.handle('/hold/1', (stream) => {
    held = stream
    stream.pause() // reads nothing, ever
    stream.addEventListener('close', (evt) => { aborted.resolve(evt.error) })
  })
  const stream = await sender.dialProtocol(receiver.getMultiaddrs()[0]!, '/hold/1')
  let sent = 0
  const chunk = new Uint8Array(64 * 1024)
  const sending = (async () => {
    try {
      for (; sent < 64 * 1024 * 1024; sent += chunk.byteLength) {
        if (!stream.send(chunk)) await new Promise((resolve, reject) => { stream.addEventListener('drain', resolve, { once: true }); stream.addEventListener('close', reject, { once: true }) })
      }
    } catch {}
  })()
  const timer = setTimeout(() => { aborted.resolve(new Error(`not aborted within 60 s; ${sent} bytes sent, ${held?.readBufferLength} buffered`)) }, 60_000)
  const err = await aborted.promise
  clearTimeout(timer)
  assert.equal(err?.name, 'StreamBufferError', `the paused stream ended with ${err?.name}: ${err?.message}`)
  stream.abort(new Error('test done'))
  await sending
})

test('the installed version is the one the patch was written for, and the patch installs (once)', async () => {
  assert.equal(checkVersion(QUIC_READ_BACKPRESSURE), '2.1.1')
  await installQuicReadBackpressure()
  await installQuicReadBackpressure()
})
