/**
 * The kind suite's accounts scenario (issue 11): a RelayPool with
 * `spec.auth.required: true` next to the example pool, its relays fetching the
 * ticket keys from the chart's discovery, accounts made through the admin API
 * with the admin secret the chart's hook Job put in a Secret, js peers with and
 * without a ticket, the relay's byte counters and `pos-relay usage`.
 * The hermetic twin is e2e/kube/test/relaypool-auth-e2e.test.ts.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { presentTicket } from '@pos-relay/client'
import { yamux } from '@pos-relay/shared/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'
import { parse } from 'yaml'
import { ticketFor } from '../test/helpers/accounts-stack.ts'
import { runCli } from '../test/helpers/cli.ts'
import { EXAMPLE_FILE, type Kubectl } from '../shared/relaypool.ts'

/** the pool with tickets required */
export const AUTH_POOL = 'relays-auth'

async function k (kubectl: Kubectl, args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input)
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}`)
  return r.stdout
}

/**
 * examples/relaypool.yaml as a second pool: one relay on `hostPort`, tickets
 * required, ticket keys from the chart's discovery (the default: the api-url
 * of discovery.p2pSecretRef), the accounts Redis = the registry's; usage
 * flushed every second so the test need not wait the default interval.
 */
export function authPoolManifest (hostPort: number): Record<string, any> {
  const pool = parse(readFileSync(EXAMPLE_FILE, 'utf8'))
  pool.metadata.name = AUTH_POOL
  pool.spec.replicas = 1
  pool.spec.hostPort = hostPort
  pool.spec.auth = { required: true, meteringIntervalSeconds: 1 }
  return pool
}

/** a Secret's value (never logged: the admin secret is one) */
export async function secretValue (kubectl: Kubectl, ns: string, name: string, key: string): Promise<string> {
  const data = JSON.parse(await k(kubectl, ['get', 'secret', name, '-n', ns, '-o', 'json'])).data ?? {}
  assert.ok(data[key] != null, `Secret ${ns}/${name} has no key ${key} (keys: ${Object.keys(data).join(', ')})`)
  return Buffer.from(data[key], 'base64').toString('utf8')
}

/** A bare js peer (TCP, Noise, Yamux, the circuit transport), not the SDK: it must use exactly the given relay. */
export async function plainPeer (): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  } as any)
}

/** A js peer that got a ticket from discovery with the account's API key and presented it to the relay at `relayAddr`. */
export async function ticketedPeer (discoveryUrl: string, apiKey: string, relayAddr: Multiaddr): Promise<Libp2p> {
  const node = await plainPeer()
  try {
    const relay = (await node.dial(relayAddr, { signal: AbortSignal.timeout(20_000) })).remotePeer
    await presentTicket(node, relay, await ticketFor(discoveryUrl, apiKey, node.peerId.toString()), AbortSignal.timeout(20_000))
    return node
  } catch (err) {
    await node.stop()
    throw err
  }
}

/** Makes `node` (ticketed) reserve on the relay: listening on `<relay>/p2p-circuit` sends the RESERVE. */
export async function reserveOn (node: Libp2p, relayAddr: Multiaddr): Promise<void> {
  await (node as any).components.transportManager.listen([relayAddr.encapsulate('/p2p-circuit')])
  assert.ok(node.getMultiaddrs().some((ma) => ma.toString().startsWith(`${relayAddr.toString()}/p2p-circuit`)), `no reservation on ${relayAddr.toString()}: ${node.getMultiaddrs().join(', ')}`)
}

export interface RelayedBytes { to_destination: number, to_source: number }

/**
 * The relay's own byte counters (pos_relay_relayed_bytes_total), read inside
 * its pod (the container port named metrics): it is not published to this machine.
 */
export async function relayCounters (kubectl: Kubectl, ns: string, pod: string): Promise<RelayedBytes> {
  const spec = JSON.parse(await k(kubectl, ['get', 'pod', pod, '-n', ns, '-o', 'json'])).spec
  const metricsPort = spec.containers[0].ports.find((p: any) => p.name === 'metrics')?.containerPort
  assert.ok(metricsPort != null, `pod ${pod} has no container port named metrics`)
  const text = await k(kubectl, ['exec', '-n', ns, pod, '--', 'node', '-e',
    `fetch('http://127.0.0.1:${metricsPort}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`])
  const counter = (direction: string): number => Number(new RegExp(`^pos_relay_relayed_bytes_total\\{direction="${direction}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0)
  return { to_destination: counter('to_destination'), to_source: counter('to_source') }
}

/** `pos-relay usage --account <id>` over the last hour, summed: what billing sees. */
export async function meteredUsage (discoveryUrl: string, adminSecret: string, account: string): Promise<RelayedBytes & { circuits: number }> {
  const r = await runCli(['usage', '--account', account, '--api-url', discoveryUrl, '--from', new Date(Date.now() - 3600_000).toISOString()], { env: { POS_RELAY_ADMIN_SECRET: adminSecret } })
  assert.equal(r.code, 0, `pos-relay usage: ${r.stderr}`)
  const rows = JSON.parse(r.stdout) as any[]
  const sum = (f: string): number => rows.reduce((n, x) => n + Number(x[f] ?? 0), 0)
  return { to_destination: sum('bytes_to_destination'), to_source: sum('bytes_to_source'), circuits: sum('circuits') }
}

export { multiaddr }
