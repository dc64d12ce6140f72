import assert from 'node:assert/strict'
import type { Connection, Libp2p } from '@libp2p/interface'

/** the echo protocol the reachability checks speak (also over limited, i.e. relayed, connections) */
export const ECHO = '/echo/1'

/** node answers ECHO streams with what they send */
export async function serveEcho (node: Libp2p): Promise<void> {
  await node.handle(ECHO, async (stream) => {
    for await (const chunk of stream) stream.send(chunk)
    await stream.close()
  }, { runOnLimitedConnection: true })
}

/** sends `ping` on an ECHO stream over conn and asserts it comes back */
export async function assertEchoes (conn: Connection): Promise<void> {
  const stream = await conn.newStream(ECHO, { runOnLimitedConnection: true })
  stream.send(new TextEncoder().encode('ping'))
  await stream.close()
  let answer = ''
  for await (const chunk of stream) answer += new TextDecoder().decode(chunk.subarray())
  assert.equal(answer, 'ping')
}
