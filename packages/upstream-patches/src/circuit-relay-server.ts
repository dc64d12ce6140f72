/**
 * Patch: the Circuit Relay v2 server (hop) of @libp2p/circuit-relay-v2 4.2.13.
 *
 * Bugs worked around (UPSTREAM.md has reproductions):
 * 1. Limit.duration in the wrong unit: the default duration limit is kept in
 *    milliseconds and written unchanged into the wire `Limit.duration`, which
 *    is in seconds (a 2 min limit is announced as 120000 s).
 * 2. handleConnect joins the streams with `pipe(src, dst, src)`, which wraps
 *    the source twice; the second wrapper queues every chunk and is never
 *    read, so a circuit holds about its whole payload in memory.
 * 3. handleConnect relays to `getConnections(dst)[0]`, which may be closing
 *    or itself a relayed connection.
 * 4. A refused HOP request (RESERVATION_REFUSED, PERMISSION_DENIED, ...) is
 *    answered and its stream left open until the connection closes.
 *
 * Patch: a relay replaces handleConnect, wraps handleReserve and
 * reservationStore.reserve (`patchHopServer`), and writes HopMessages with
 * upstream's own protobuf codec, which the package does not export: it is
 * loaded by file URL from next to the package's entry point.
 */
import { checkVersion, requireInternal, type UpstreamTarget } from './version.js'
import type { Connection, ConnectionGater, PeerId, Stream } from '@libp2p/interface'

export const CIRCUIT_RELAY_SERVER: UpstreamTarget = { patch: 'circuit-relay-server', package: '@libp2p/circuit-relay-v2', versions: ['4.2.13'] }

checkVersion(CIRCUIT_RELAY_SERVER)

export interface HopMessageCodec { encode: (m: any) => Uint8Array, decode: (b: any) => any }

/** upstream's generated protobuf codec for HopMessage (not exported by the package) */
export const HopMessage: HopMessageCodec = await (async () => {
  const url = new URL('./pb/index.js', import.meta.resolve('@libp2p/circuit-relay-v2')).href
  const pb = await import(url).catch(() => undefined) as { HopMessage?: Partial<HopMessageCodec> } | undefined
  requireInternal(CIRCUIT_RELAY_SERVER, typeof pb?.HopMessage?.encode === 'function' && typeof pb.HopMessage.decode === 'function', `${url} has no HopMessage codec`)
  return pb!.HopMessage as HopMessageCodec
})()

export interface UpstreamReservation { limit?: { data?: bigint, duration?: number }, signal: AbortSignal & { clear: () => void } }
export interface ReserveResult { status: string | number, expire?: number }
export interface UpstreamReservationStore {
  reservations: { size: number, get: (p: PeerId) => UpstreamReservation | undefined, delete: (p: PeerId) => void }
  reserve: (peer: PeerId, addr: unknown, limit?: unknown) => ReserveResult
}
/** the pbStream (@libp2p/utils) upstream hands its handlers */
export interface PbStream {
  write: (v: any, codec: any, o?: any) => Promise<void>
  pb: (codec: any) => { write: (v: any, o?: any) => Promise<void> }
  unwrap: () => Stream
}
export interface HopContext { stream: PbStream, connection: Connection, request: { peer?: { id: Uint8Array } } }
export interface StopHopArgs { connection: Connection, request: { type: string, peer: { id: Uint8Array, addrs: Uint8Array[] }, limit?: { data?: bigint } } }
export type HopHandler = (ctx: HopContext, options: any) => Promise<void>

/** The parts of the relay server we use; private, so checked by `hopServerInternals`. */
export interface UpstreamRelayServer {
  components: { connectionGater: ConnectionGater, connectionManager: { getConnections: (peer: PeerId) => Connection[] } }
  reservationStore: UpstreamReservationStore
  handleReserve: HopHandler
  handleConnect: HopHandler
  stopHop: (args: StopHopArgs, options: any) => Promise<Stream | undefined>
}

/** `service` (libp2p's `services.relay` of circuitRelayServer()) as its checked internals. */
export function hopServerInternals (service: unknown): UpstreamRelayServer {
  const server = service as Partial<UpstreamRelayServer> | undefined
  for (const name of ['handleReserve', 'handleConnect', 'stopHop'] as const) {
    requireInternal(CIRCUIT_RELAY_SERVER, typeof server?.[name] === 'function', `the relay server's ${name}() is missing`)
  }
  const store = server!.reservationStore
  requireInternal(CIRCUIT_RELAY_SERVER, typeof store?.reserve === 'function' && store.reservations != null, 'the relay server\'s reservationStore.reserve/reservations are missing')
  requireInternal(CIRCUIT_RELAY_SERVER, server!.components?.connectionManager != null, 'the relay server\'s components.connectionManager is missing')
  return server as UpstreamRelayServer
}

/** What a relay puts in place of upstream's handlers; each gets upstream's own where it wraps it. */
export interface HopServerPatch {
  handleReserve: (ctx: HopContext, options: any, upstream: HopHandler) => Promise<void>
  /** replaces upstream's entirely (bugs 2 and 3); `stopHop` is upstream's STOP request */
  handleConnect: (ctx: HopContext, options: any) => Promise<void>
  reserve: (peer: PeerId, addr: unknown, upstream: (peer: PeerId, addr: unknown) => ReserveResult) => ReserveResult
}

/** Installs `patch` on the relay server; returns its checked internals, with upstream's stopHop bound. */
export function patchHopServer (service: unknown, patch: HopServerPatch): UpstreamRelayServer {
  const server = hopServerInternals(service)
  const store = server.reservationStore
  const handleReserve = server.handleReserve.bind(server)
  const reserve = store.reserve.bind(store)
  const stopHop = server.stopHop.bind(server)
  server.handleReserve = async (ctx, options) => { await patch.handleReserve(ctx, options, handleReserve) }
  server.handleConnect = async (ctx, options) => { await patch.handleConnect(ctx, options) }
  store.reserve = (peer, addr) => patch.reserve(peer, addr, reserve)
  return { components: server.components, reservationStore: store, handleReserve, handleConnect: server.handleConnect, stopHop }
}

/**
 * Ends our side of a HOP stream once its answer is written (bug 4): half-closes
 * it, or aborts it when that fails. Nothing more is ever sent on a refused
 * request, and the client's read then ends instead of waiting.
 */
export async function closeHopStream (stream: PbStream, options?: { signal?: AbortSignal }): Promise<void> {
  const raw = stream.unwrap()
  if (raw.writeStatus !== 'writable') return
  try {
    await raw.close(options)
  } catch (err: any) {
    raw.abort(err)
  }
}
