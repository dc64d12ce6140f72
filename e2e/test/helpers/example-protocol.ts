/**
 * The file-transfer examples' protocol (examples/file-transfer and the Rust and Go ones), spoken by
 * an SDK peer in a test or bench process: one stream, `<name>\n` then the bytes; the listener
 * answers the SHA-256 (hex) of what it received.
 */
import { createHash } from 'node:crypto'
import type { Connection } from '@libp2p/interface'

export const EXAMPLE_PROTOCOL = '/pos-relay-example/file/1.0.0'

/** Sends `data` as `name` over `conn` (a relayed connection is fine); true when the right hash comes back. */
export async function sendToExample (conn: Connection, name: string, data: Uint8Array): Promise<boolean> {
  const stream = await conn.newStream(EXAMPLE_PROTOCOL, { runOnLimitedConnection: true })
  stream.send(new TextEncoder().encode(`${name}\n`))
  stream.send(data)
  await stream.close()
  let answer = ''
  for await (const chunk of stream) answer += new TextDecoder().decode(chunk.subarray())
  return answer === createHash('sha256').update(data).digest('hex')
}
