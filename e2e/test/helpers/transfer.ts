import { createHash, randomBytes } from 'node:crypto'
import type { Connection, Libp2p } from '@libp2p/interface'

export const SINK_PROTOCOL = '/pos-relay-test/sink/1.0.0'

/** Registers a protocol that hashes everything it receives and replies `{bytes, sha256}`. */
export async function serveSink (node: Libp2p): Promise<void> {
  await node.handle(SINK_PROTOCOL, async (stream) => {
    const hash = createHash('sha256')
    let bytes = 0
    for await (const chunk of stream) {
      const buf = chunk.subarray()
      hash.update(buf)
      bytes += buf.byteLength
    }
    stream.send(new TextEncoder().encode(JSON.stringify({ bytes, sha256: hash.digest('hex') })))
    await stream.close()
  }, { runOnLimitedConnection: true })
}

/** Sends `size` random bytes over a new sink stream; returns what was sent and what the sink saw. */
export async function sendToSink (conn: Connection, size: number): Promise<{ sent: { bytes: number, sha256: string }, received: { bytes: number, sha256: string } }> {
  const stream = await conn.newStream(SINK_PROTOCOL, { runOnLimitedConnection: true })
  const hash = createHash('sha256')
  const chunkSize = 64 * 1024
  for (let sent = 0; sent < size; sent += chunkSize) {
    const chunk = randomBytes(Math.min(chunkSize, size - sent))
    hash.update(chunk)
    if (!stream.send(chunk)) {
      // a stream reset while we wait for 'drain' never drains: fail instead of waiting forever
      await new Promise<void>((resolve, reject) => {
        stream.addEventListener('drain', () => { resolve() }, { once: true })
        stream.addEventListener('close', (evt) => { reject(evt.error ?? new Error('stream closed while waiting for drain')) }, { once: true })
      })
    }
  }
  await stream.close()
  let reply = ''
  for await (const chunk of stream) reply += new TextDecoder().decode(chunk.subarray())
  return { sent: { bytes: size, sha256: hash.digest('hex') }, received: JSON.parse(reply) }
}
