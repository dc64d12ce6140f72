/**
 * The file-transfer examples' protocol (examples/file-transfer and the Rust and Go ones), spoken by
 * an SDK peer in a test or bench process: one stream, the header `<sha256 hex> <name>\n` then the
 * bytes; the listener keeps the file only when its SHA-256 matches the header and answers the
 * SHA-256 (hex) of what it received.
 */
import { createHash } from 'node:crypto'
import type { Connection } from '@libp2p/interface'

/** 2.0.0: the header carries the file's SHA-256 */
export const EXAMPLE_PROTOCOL = '/pos-relay-example/file/2.0.0'

/** The header a sender writes before the bytes. */
export function exampleHeader (name: string, data: Uint8Array): string {
  return `${createHash('sha256').update(data).digest('hex')} ${name}\n`
}

/** Sends `data` as `name` over `conn` (a relayed connection is fine); true when the right hash comes back. */
export async function sendToExample (conn: Connection, name: string, data: Uint8Array): Promise<boolean> {
  const stream = await conn.newStream(EXAMPLE_PROTOCOL, { runOnLimitedConnection: true })
  stream.send(new TextEncoder().encode(exampleHeader(name, data)))
  stream.send(data)
  await stream.close()
  let answer = ''
  for await (const chunk of stream) answer += new TextDecoder().decode(chunk.subarray())
  return answer === createHash('sha256').update(data).digest('hex')
}
