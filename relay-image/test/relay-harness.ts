/**
 * In-process relays and real js-libp2p peers on loopback for the relay
 * tests. Everything started is stopped by `runCleanups` (call it in
 * afterEach).
 */
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { newConfig, parseConfig, RelayServer, type RelayDataPath } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { waitFor, scrapeMetric } from '@pos-relay/testing'
import { createLibp2p, type Libp2p } from 'libp2p'

export const logger = createLogger({ name: 'relay-test', level: process.env.LOG_LEVEL ?? 'silent' })
export const cleanups: Array<() => unknown> = []
export async function runCleanups (): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!()
}

export async function startRelay (overrides: Record<string, unknown> = {}, limits: Record<string, number> = {}, dataPath?: RelayDataPath): Promise<RelayServer> {
  const base = await newConfig({ p2p_secret: 'test-secret', port: 0 })
  const config = parseConfig({ ...base, host: '127.0.0.1', metrics_host: '127.0.0.1', metrics_port: 0, drain_seconds: 2, ...overrides, limits: { ...base.limits, ...limits } })
  const relay = new RelayServer({ config, logger, dataPath })
  await relay.start()
  cleanups.push(async () => { await relay.stop() })
  return relay
}

/** `circuitTransport: false`: a peer that speaks the relay protocols by hand */
export async function peer (listen: string[] = [], opts: { circuitTransport?: boolean } = {}): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen },
    transports: opts.circuitTransport === false ? [tcp()] : [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  })
  cleanups.push(async () => { await node.stop() })
  return node
}

export const relayAddr = (relay: RelayServer): Multiaddr => multiaddr(relay.addresses[0]!)

export const metric = async (relay: RelayServer, pattern: RegExp): Promise<number> => await scrapeMetric(relay.metricsAddress!.port, pattern)

/** A listener with a reservation and a sink protocol counting what arrives. */
export async function reservedListener (relay: RelayServer): Promise<{ node: Libp2p, received: () => number, closed: Promise<void> }> {
  const node = await peer([`${relayAddr(relay)}/p2p-circuit`])
  let received = 0
  let onClosed!: () => void
  const closed = new Promise<void>((resolve) => { onClosed = resolve })
  await node.handle('/sink/1', async (stream) => {
    try { for await (const chunk of stream) received += chunk.byteLength } catch {}
    onClosed()
  }, { runOnLimitedConnection: true })
  await waitFor(() => node.getMultiaddrs().some((ma) => ma.toString().includes('/p2p-circuit')), { timeoutMs: 10_000, message: 'no reservation' })
  return { node, received: () => received, closed }
}

export async function pump (stream: any, bytes: number): Promise<number> {
  const chunk = new Uint8Array(16 * 1024)
  let sent = 0
  try {
    while (sent < bytes) {
      if (!stream.send(chunk)) await new Promise((resolve, reject) => { stream.addEventListener('drain', resolve, { once: true }); stream.addEventListener('close', reject, { once: true }) })
      sent += chunk.length
    }
  } catch {}
  return sent
}
