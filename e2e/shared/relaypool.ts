/**
 * What "a RelayPool works" means, end to end, for every suite that runs one:
 * the hermetic kube suite (real API server, operator and discovery; relay
 * processes started from the pod spec as a kubelet would) and the kind suite
 * (a real cluster from the Helm chart). Both drive the cluster through a
 * `kubectl` function, read discovery over HTTP and move bytes with the client
 * SDK, so the checks below are the same code in both.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createRelayPeer, isRelayed, type RelayPeer } from '@pos-relay/client'
import { quicTransport } from '@pos-relay/relay'
import { yamux } from '@pos-relay/shared/yamux'
import { pollUntil } from '@pos-relay/testing'
import { createLibp2p } from 'libp2p'
import { sendToSink, serveSink } from '../test/helpers/transfer.ts'

/** `kubectl ...args` against the cluster under test (stdin = `input`) */
export type Kubectl = (args: string[], input?: string) => Promise<{ code: number | string, stdout: string, stderr: string }>

export const EXAMPLE_FILE = new URL('../../examples/relaypool.yaml', import.meta.url)
/** the pool examples/relaypool.yaml creates */
export const EXAMPLE_POOL = 'relays'

async function k (kubectl: Kubectl, args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input)
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}`)
  return r.stdout
}

/** pollUntil every 500 ms (a real cluster), with the object's state in the timeout error */
async function poll<T> (what: string, fn: () => Promise<T | undefined>, timeoutMs: number, describe: () => Promise<string> = async () => ''): Promise<T> {
  return await pollUntil(what, fn, { timeoutMs, intervalMs: 500, describe })
}

export async function getPool (kubectl: Kubectl, ns: string, name: string): Promise<any> {
  return JSON.parse(await k(kubectl, ['get', 'relaypool', name, '-n', ns, '-o', 'json']))
}

/**
 * `kubectl apply -f examples/relaypool.yaml` as the README shows, then a merge
 * patch of what the environment needs (e.g. fewer replicas than the example's
 * two on a one-node cluster).
 */
export async function applyExamplePool (kubectl: Kubectl, ns: string, patch?: Record<string, unknown>): Promise<void> {
  const out = await k(kubectl, ['apply', '-n', ns, '-f', '-'], readFileSync(EXAMPLE_FILE, 'utf8'))
  assert.match(out, /relaypool\.pos-relay\.io\/relays (created|configured|unchanged)/)
  if (patch != null) await k(kubectl, ['patch', 'relaypool', EXAMPLE_POOL, '-n', ns, '--type', 'merge', '-p', JSON.stringify({ spec: patch })])
}

/**
 * Annotates every node with the address its relays announce (the example
 * pool's `publicAddress.nodeAnnotation`): where this environment publishes the
 * node's hostPort to the test's peers.
 */
export async function setNodesPublicAddress (kubectl: Kubectl, address: string): Promise<void> {
  const nodes = (await k(kubectl, ['get', 'nodes', '-o', 'name'])).trim().split('\n').filter((n) => n !== '')
  assert.ok(nodes.length > 0, 'the cluster has no node')
  for (const n of nodes) await k(kubectl, ['annotate', '--overwrite', n, `pos-relay.io/public-address=${address}`])
}

/**
 * Waits until the operator reports the pool done: status for the current
 * generation, `relays` desired, ready and registered, Ready=True
 * (AllRelaysReady); every relay with a peer id and a full multiaddr. On
 * timeout the error carries the pool's conditions and relays.
 */
export async function waitForPoolReady (kubectl: Kubectl, ns: string, name: string, relays: number, timeoutMs = 120_000): Promise<any> {
  const pool = await poll(`RelayPool ${ns}/${name} Ready with ${relays} relays`, async () => {
    const p = await getPool(kubectl, ns, name)
    const s = p.status ?? {}
    const ready = s.conditions?.find((c: any) => c.type === 'Ready')
    const done = s.observedGeneration === p.metadata.generation && s.desiredRelays === relays && s.readyRelays === relays &&
      s.registeredRelays === relays && ready?.status === 'True'
    return done ? p : undefined
  }, timeoutMs, async () => {
    const p = await getPool(kubectl, ns, name)
    return `status: ${JSON.stringify({ conditions: p.status?.conditions?.map((c: any) => `${c.type}=${c.status} ${c.reason}: ${c.message}`), relays: p.status?.relays }, null, 2)}`
  })
  const ready = pool.status.conditions.find((c: any) => c.type === 'Ready')
  assert.equal(ready.reason, 'AllRelaysReady')
  assert.equal(ready.observedGeneration, pool.metadata.generation)
  for (const c of ['Degraded', 'HostPortConflict']) assert.equal(pool.status.conditions.find((x: any) => x.type === c)?.status, 'False', `${c} should be False`)
  assert.equal(pool.status.relays.length, relays)
  for (const r of pool.status.relays) {
    assert.equal(r.ready, true, `${r.pod} ready`)
    assert.equal(r.registered, true, `${r.pod} registered`)
    assert.equal(r.phase, 'Running')
    assert.match(r.peerId, /^12D3KooW/)
    assert.equal(r.multiaddr, `/${r.publicAddress.includes(':') ? 'ip6' : /^[\d.]+$/.test(r.publicAddress) ? 'ip4' : 'dns'}/${r.publicAddress}/tcp/${pool.spec.hostPort}/p2p/${r.peerId}`)
  }
  return pool
}

export interface ListedRelay { id: string, peer_id: string, addrs: string[], registered_at: string, updated_at: string, expires_at: string }

export async function listRelays (discoveryUrl: string): Promise<ListedRelay[]> {
  const res = await fetch(`${discoveryUrl}/api/p2p/relays`)
  assert.equal(res.status, 200, `GET ${discoveryUrl}/api/p2p/relays`)
  return await res.json() as ListedRelay[]
}

/** Waits until the discovery API lists every relay of `pool` (as its status names them), under the operator's registry id. */
export async function waitForDiscovery (discoveryUrl: string, pool: any, timeoutMs = 60_000): Promise<ListedRelay[]> {
  const ns = pool.metadata.namespace
  // the status names the TCP address; the operator registers it and then its QUIC twin (same host and port, UDP)
  const quicTwin = (tcp: string): string => tcp.replace(/\/tcp\/(\d+)\/p2p\//, '/udp/$1/quic-v1/p2p/')
  const want = (pool.status.relays as any[]).map((r) => ({ id: `${ns}:${pool.metadata.name}:${r.slot}`, peer_id: r.peerId, addrs: [r.multiaddr, quicTwin(r.multiaddr)] }))
  return await poll(`discovery at ${discoveryUrl} to list ${want.map((w) => w.addrs[0]).join(', ')}`, async () => {
    const listed = await listRelays(discoveryUrl)
    const mine = want.map((w) => listed.find((l) => l.id === w.id))
    if (mine.some((m) => m == null)) return undefined
    for (let i = 0; i < want.length; i++) assert.deepEqual({ id: mine[i]!.id, peer_id: mine[i]!.peer_id, addrs: mine[i]!.addrs }, want[i])
    return mine as ListedRelay[]
  }, timeoutMs, async () => `listed: ${JSON.stringify(await listRelays(discoveryUrl))}`)
}

/** Waits until the discovery API no longer lists any relay of the pool (after its deletion: the finalizer's work). */
export async function waitForDeregistered (discoveryUrl: string, ns: string, name: string, timeoutMs = 60_000): Promise<void> {
  await poll(`discovery to drop the relays of ${ns}/${name}`, async () =>
    (await listRelays(discoveryUrl)).some((l) => l.id.startsWith(`${ns}:${name}:`)) ? undefined : true, timeoutMs)
}

/** Waits until the pool has Events with each of `reasons` from the operator. */
export async function waitForPoolEvents (kubectl: Kubectl, ns: string, name: string, reasons: string[], timeoutMs = 30_000): Promise<any[]> {
  const events = async (): Promise<any[]> => JSON.parse(await k(kubectl, ['get', 'events.events.k8s.io', '-n', ns, '-o', 'json'])).items
    .filter((e: any) => e.regarding?.kind === 'RelayPool' && e.regarding.name === name && e.reportingController === 'pos-relay.io/operator')
  return await poll(`Events ${reasons.join(', ')} on RelayPool ${ns}/${name}`, async () => {
    const got = await events()
    return reasons.every((r) => got.some((e) => e.reason === r)) ? got : undefined
  }, timeoutMs, async () => `events: ${(await events()).map((e) => `${e.type} ${e.reason}: ${e.note}`).join('\n')}`)
}

export interface TransferResult { bytes: number, sha256: string, relayPeerId: string, ms: number }

/**
 * Two app peers built with the client SDK find the relays through discovery;
 * the listener reserves, the sender dials it through a relay, and `bytes`
 * random bytes must arrive intact over the relayed connection. The relay used
 * must be one of `relayPeerIds` (the pool's).
 */
export async function relayedTransfer (discoveryUrl: string, relayPeerIds: string[], bytes = 4 * 1024 * 1024): Promise<TransferResult> {
  const peers: RelayPeer[] = []
  try {
    // peers listen on loopback only: the point is the relayed path, and a
    // direct upgrade (DCUtR) between two processes on one host proves nothing
    const listener = await createRelayPeer({ discoveryUrl, relayCount: 1, listen: ['/ip4/127.0.0.1/tcp/0'], reservationTimeoutMs: 30_000 })
    peers.push(listener)
    const sender = await createRelayPeer({ discoveryUrl, relayCount: 1, listen: ['/ip4/127.0.0.1/tcp/0'], reservationTimeoutMs: 30_000 })
    peers.push(sender)
    await serveSink(listener.node)
    const t0 = Date.now()
    const conn = await sender.relays.dial(listener.node.peerId)
    assert.ok(isRelayed(conn), `not relayed: ${conn.remoteAddr.toString()}`)
    const relayPeerId = /\/p2p\/([^/]+)\/p2p-circuit/.exec(conn.remoteAddr.toString())?.[1]
    assert.ok(relayPeerId != null && relayPeerIds.includes(relayPeerId), `relayed by ${relayPeerId ?? '?'}, not by the pool's relays ${relayPeerIds.join(', ')}`)
    const { sent, received } = await sendToSink(conn, bytes)
    assert.deepEqual(received, sent, 'the payload arrived changed')
    return { ...sent, relayPeerId, ms: Date.now() - t0 }
  } finally {
    for (const p of peers) await p.stop().catch(() => {})
  }
}

/** Deletes the pool and waits until it is gone (the operator's finalizer has deregistered its relays). */
export async function deletePool (kubectl: Kubectl, ns: string, name: string, timeoutMs = 60_000): Promise<void> {
  await k(kubectl, ['delete', 'relaypool', name, '-n', ns, '--wait=false'])
  await poll(`RelayPool ${ns}/${name} to be deleted`, async () => (await kubectl(['get', 'relaypool', name, '-n', ns])).code !== 0 ? true : undefined, timeoutMs)
}

/**
 * Moves `bytes` through one given relay address (TCP, or QUIC for a
 * `/udp/…/quic-v1` address): a listener reserves on exactly that relay, a
 * sender dials `<relay>/p2p-circuit/p2p/<listener>`, and the payload must
 * arrive intact. Bare libp2p nodes rather than the SDK, because the SDK picks
 * relays by rendezvous ranking and this must prove each relay pod works.
 */
export async function transferThrough (relayAddr: string, bytes = 4 * 1024 * 1024, reservationTimeoutMs = 30_000): Promise<TransferResult> {
  const quic = relayAddr.includes('/quic-v1')
  // listening on <relay>/p2p-circuit makes the listener reserve on that relay as it starts
  const make = async (listen: string[] = []): Promise<any> => await createLibp2p({
    addresses: { listen: [quic ? '/ip4/127.0.0.1/udp/0/quic-v1' : '/ip4/127.0.0.1/tcp/0', ...listen] },
    transports: [quic ? await quicTransport() : tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  } as any)
  const nodes: any[] = []
  try {
    const listener = await make([`${relayAddr}/p2p-circuit`])
    nodes.push(listener)
    const sender = await make()
    nodes.push(sender)
    await serveSink(listener)
    await poll(`a reservation on ${relayAddr}`, async () =>
      listener.getMultiaddrs().some((ma: any) => ma.toString().startsWith(`${relayAddr}/p2p-circuit`)) ? true : undefined, reservationTimeoutMs)
    const relayPeerId = /\/p2p\/([^/]+)$/.exec(relayAddr)![1]!
    const t0 = Date.now()
    const conn = await sender.dial(multiaddr(`${relayAddr}/p2p-circuit/p2p/${listener.peerId.toString()}`), { signal: AbortSignal.timeout(20_000) })
    assert.ok(isRelayed(conn), `not relayed: ${conn.remoteAddr.toString()}`)
    const { sent, received } = await sendToSink(conn, bytes)
    assert.deepEqual(received, sent, 'the payload arrived changed')
    return { ...sent, relayPeerId, ms: Date.now() - t0 }
  } finally {
    for (const n of nodes) await n.stop().catch(() => {})
  }
}

export { poll }

const TRICKLE_PROTOCOL = '/pos-relay-test/trickle/1.0.0'

export interface Trickle {
  /** bytes the listener has received so far */
  received: () => number
  /** the first error of either side, if any */
  error: () => string | undefined
  stop: () => Promise<void>
}

/**
 * An open circuit through `relayAddr` that carries 16 KiB every 100 ms until
 * stopped: for checks that a relay keeps carrying open circuits (while it
 * drains, say).
 */
export async function trickleThrough (relayAddr: string): Promise<Trickle> {
  const make = async (listen: string[] = []): Promise<any> => await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0', ...listen] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  } as any)
  let received = 0
  let error: string | undefined
  let stopped = false
  const listener = await make([`${relayAddr}/p2p-circuit`])
  const sender = await make()
  const stop = async (): Promise<void> => { stopped = true; await sender.stop().catch(() => {}); await listener.stop().catch(() => {}) }
  try {
    await listener.handle(TRICKLE_PROTOCOL, async (stream: any) => {
      try { for await (const chunk of stream) received += chunk.subarray().byteLength } catch (err: any) { error ??= `listener: ${String(err.message ?? err)}` }
    }, { runOnLimitedConnection: true })
    await poll(`a reservation on ${relayAddr}`, async () =>
      listener.getMultiaddrs().some((ma: any) => ma.toString().startsWith(`${relayAddr}/p2p-circuit`)) ? true : undefined, 30_000)
    const conn = await sender.dial(multiaddr(`${relayAddr}/p2p-circuit/p2p/${listener.peerId.toString()}`), { signal: AbortSignal.timeout(20_000) })
    const stream = await conn.newStream(TRICKLE_PROTOCOL, { runOnLimitedConnection: true })
    const chunk = new Uint8Array(16 * 1024)
    void (async () => {
      while (!stopped) {
        try {
          if (!stream.send(chunk)) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
        } catch (err: any) { error ??= `sender: ${String(err.message ?? err)}`; return }
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    })()
  } catch (err) {
    await stop()
    throw err
  }
  return { received: () => received, error: () => error, stop }
}
