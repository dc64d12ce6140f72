import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createLibp2p, type Libp2p } from 'libp2p'
import { connectionManagerOf, LIBP2P_GET_CONNECTIONS, linearGetConnections } from '@pos-relay/upstream-patches/libp2p-get-connections'
import { checkVersion } from '@pos-relay/upstream-patches/version'

const PEERS = 200

/** A libp2p node (never started) whose connection manager lists PEERS peers with one fake connection each. */
async function nodeWithPeers (): Promise<Libp2p> {
  const node = await createLibp2p({ start: false })
  const map = connectionManagerOf(node).getConnectionsMap() as unknown as { set: (peer: unknown, conns: unknown[]) => void }
  for (let i = 0; i < PEERS; i++) {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    map.set(peer, [{ id: `conn-${i}`, remotePeer: peer }])
  }
  return node
}

/** Calls to Array.prototype.concat during `fn` (upstream's all-peers getConnections() makes one per peer). */
function countConcats<T> (fn: () => T): { calls: number, result: T } {
  const concat = Array.prototype.concat
  let calls = 0
  // eslint-disable-next-line no-extend-native -- counting upstream's concat calls is the measurement
  Array.prototype.concat = function (this: unknown[], ...args: unknown[]) { calls++; return concat.apply(this, args) }
  let result: T
  try {
    result = fn()
  } finally {
    // eslint-disable-next-line no-extend-native -- restores the original
    Array.prototype.concat = concat
  }
  return { calls, result }
}

// The bug. When this fails, upstream's getConnections() no longer copies the
// list once per peer and the patch can go (UPSTREAM.md).
test('upstream getConnections() copies the list so far once per connected peer (quadratic)', async () => {
  const node = await nodeWithPeers()
  const { calls, result } = countConcats(() => node.getConnections())
  assert.equal(result.length, PEERS)
  assert.equal(calls, PEERS, `${calls} concat() calls for ${PEERS} peers`)
})

test('patched, the same connections come back without one copy per peer; per-peer lookups are unchanged', async () => {
  const node = await nodeWithPeers()
  const before = node.getConnections().map((c) => c.id)
  linearGetConnections(node)
  const { calls, result } = countConcats(() => node.getConnections())
  assert.deepEqual(result.map((c) => c.id), before)
  assert.equal(calls, 0)
  const first = result[0]!
  assert.deepEqual(node.getConnections(first.remotePeer).map((c) => c.id), [first.id])
})

test('the installed version is the one the patch was written for; a node without the internals fails loudly', () => {
  assert.equal(checkVersion(LIBP2P_GET_CONNECTIONS), '3.3.11')
  assert.throws(() => { linearGetConnections({}) }, /libp2p internals changed: components\.connectionManager/)
})
