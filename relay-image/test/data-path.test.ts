/**
 * The relay's data path: its TCP connections (under Noise) get the
 * tickWrites lever of patch noise-tcp-datapath by default (data-path.ts);
 * `dataPath: { tickWrites: false }` gives upstream's; a client built on
 * @pos-relay/shared's yamux (the SDK's) is left as upstream has it. What the
 * lever changes on the wire (one writev per tick) is tested with the patch
 * (packages/upstream-patches/test/noise-tcp-datapath.test.ts).
 */
import assert from 'node:assert/strict'
import { afterEach, it } from 'node:test'
import { appliedDataPath } from '@pos-relay/upstream-patches/noise-tcp-datapath'
import { waitFor } from '@pos-relay/testing'
import type { Libp2p } from 'libp2p'
import { peer, pump, relayAddr, reservedListener, runCleanups, startRelay } from './relay-harness.ts'
import type { RelayServer } from '@pos-relay/relay'

afterEach(runCleanups)

/** the levers applied to each of `node`'s connections (undefined: unpatched) */
const levers = (node: Libp2p | RelayServer): unknown[] => ('libp2p' in node ? node.libp2p : node).getConnections().map((c) => appliedDataPath((c as unknown as { maConn: unknown }).maConn))

it('relay: tickWrites on for its TCP connections by default, the client unpatched; a relayed transfer arrives whole', { timeout: 60_000 }, async () => {
  const relay = await startRelay()
  const listener = await reservedListener(relay)
  const dialer = await peer()
  const conn = await dialer.dial(relayAddr(relay).encapsulate(`/p2p-circuit/p2p/${listener.node.peerId}`))
  await waitFor(() => relay.libp2p.getConnections().length === 2, { timeoutMs: 10_000, message: 'relay has not both peers connected' })
  assert.deepEqual(levers(relay), [{ tickWrites: true }, { tickWrites: true }])
  assert.deepEqual(levers(dialer).filter((l) => l !== undefined), [])
  const stream = await conn.newStream('/sink/1', { runOnLimitedConnection: true })
  const sent = await pump(stream, 8 * 1024 * 1024)
  await stream.close()
  await listener.closed
  assert.equal(listener.received(), sent)
})

it('relay: dataPath { tickWrites: false } keeps upstream\'s data path', { timeout: 60_000 }, async () => {
  const relay = await startRelay({}, {}, { tickWrites: false })
  const dialer = await peer()
  await dialer.dial(relayAddr(relay))
  await waitFor(() => relay.libp2p.getConnections().length === 1, { timeoutMs: 10_000, message: 'no connection' })
  assert.deepEqual(levers(relay), [undefined])
})
