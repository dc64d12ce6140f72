import { hopStatusCodec, HopStatus, type HopStatusCode } from './hop-status.js'
import type { RelayMetrics } from './metrics.js'
import type { RelayLimits } from './config.js'
import type { Logger } from '@pos-relay/shared'
import type { PeerId, Stream } from '@libp2p/interface'

/**
 * The parts of @libp2p/circuit-relay-v2's server (4.2.13, pinned exactly) that
 * we hook. They are not public API, so `installHopHooks` checks they exist
 * and fails at start-up, not at the first circuit, if an upgrade moved them.
 */
interface UpstreamReservation { limit?: { data?: bigint, duration?: number }, signal: AbortSignal & { clear: () => void } }
interface UpstreamReservationStore {
  reservations: { size: number, get: (p: PeerId) => UpstreamReservation | undefined, delete: (p: PeerId) => void }
  reserve: (peer: PeerId, addr: unknown, limit?: unknown) => { status: string | number, expire?: number }
}
interface HopContext { stream: { write: (v: any, codec: any, o?: any) => Promise<void> }, connection: { remotePeer: PeerId }, request: any }
interface StopHopArgs { connection: { remotePeer: PeerId }, request: { peer: { id: Uint8Array } } }
interface UpstreamRelayServer {
  reservationStore: UpstreamReservationStore
  handleReserve: (ctx: HopContext, options: any) => Promise<void>
  handleConnect: (ctx: HopContext, options: any) => Promise<void>
  stopHop: (args: StopHopArgs, options: any) => Promise<Stream | undefined>
}

export interface HopHooksOptions {
  limits: RelayLimits
  metrics: RelayMetrics
  logger: Logger
  isDraining: () => boolean
}

export interface HopHooks {
  /** circuits currently relayed */
  readonly activeCircuits: number
  /** forget the reservation of a peer whose last connection closed */
  dropReservation: (peer: PeerId) => void
  /** resolves when no circuit is open, or at the signal */
  waitForCircuitsToEnd: (signal: AbortSignal) => Promise<void>
}

export class DurationLimitError extends Error {
  override name = 'DurationLimitError'
}

function endReason (err: Error | undefined, shuttingDown: boolean): string {
  if (err == null) return 'closed'
  if (err.name === 'TransferLimitError') return 'data_limit'
  if (err.name === 'DurationLimitError') return 'duration_limit'
  if (shuttingDown) return 'shutdown'
  return 'error'
}

export function installHopHooks (service: unknown, opts: HopHooksOptions): HopHooks {
  const server = service as UpstreamRelayServer
  for (const name of ['handleReserve', 'handleConnect', 'stopHop'] as const) {
    if (typeof server[name] !== 'function') throw new Error(`@libp2p/circuit-relay-v2 internals changed: ${name} is missing; pin 4.2.13`)
  }
  const store = server.reservationStore
  if (typeof store?.reserve !== 'function' || store.reservations == null) throw new Error('@libp2p/circuit-relay-v2 internals changed: reservationStore; pin 4.2.13')

  const { limits, metrics, logger } = opts
  let active = 0
  const idleWaiters = new Set<() => void>()
  const toDestination = metrics.relayedBytesTotal.labels('to_destination')
  const toSource = metrics.relayedBytesTotal.labels('to_source')
  metrics.sources.reservations = () => store.reservations.size
  metrics.sources.circuits = () => active

  const refuse = async (ctx: HopContext, options: any, status: HopStatusCode, reason: string): Promise<void> => {
    metrics.denialsTotal.inc({ reason })
    await ctx.stream.write(status, hopStatusCodec, options)
  }

  // RESERVE: refuse while draining so clients move to another relay; count results
  const handleReserve = server.handleReserve.bind(server)
  server.handleReserve = async (ctx, options) => {
    if (opts.isDraining()) {
      metrics.reservationsTotal.inc({ result: 'refused' })
      await refuse(ctx, options, HopStatus.RESERVATION_REFUSED, 'draining')
      return
    }
    await handleReserve(ctx, options)
  }

  // Upstream applies one default limit with the duration in ms, but writes
  // that number unchanged into the wire `Limit.duration`, which is in seconds
  // (a 2 min limit is announced as 120000 s). So we announce and let upstream
  // enforce only the data limit, and enforce the duration ourselves.
  const dataLimit = limits.circuit_data_limit_bytes > 0 ? { data: BigInt(limits.circuit_data_limit_bytes) } : undefined
  const reserve = store.reserve.bind(store)
  store.reserve = (peer, addr) => {
    const existed = store.reservations.get(peer) != null
    const result = reserve(peer, addr)
    // upstream's protons codec uses string enum values ('OK')
    if (result.status === 'OK' || result.status === HopStatus.OK) {
      const reservation = store.reservations.get(peer)
      if (reservation != null) reservation.limit = dataLimit
      metrics.reservationsTotal.inc({ result: existed ? 'refreshed' : 'ok' })
    } else {
      metrics.reservationsTotal.inc({ result: 'refused' })
      metrics.denialsTotal.inc({ reason: 'reservation_limit' })
    }
    return result
  }

  // CONNECT: cap concurrent circuits with the spec's status for it
  const handleConnect = server.handleConnect.bind(server)
  server.handleConnect = async (ctx, options) => {
    if (limits.max_circuits > 0 && active >= limits.max_circuits) {
      metrics.circuitsTotal.inc({ result: 'denied' })
      await refuse(ctx, options, HopStatus.RESOURCE_LIMIT_EXCEEDED, 'circuit_limit')
      return
    }
    const before = active
    await handleConnect(ctx, options)
    if (active === before) metrics.circuitsTotal.inc({ result: 'failed' })
  }

  // STOP: the stream to the destination is where a circuit becomes real.
  // Bytes are counted by wrapping send/dispatchEvent, not by adding a
  // 'message' listener: a listener attached before upstream's pipe() starts
  // would receive (and so take) the first bytes.
  const stopHop = server.stopHop.bind(server)
  server.stopHop = async (args, options) => {
    const stream = await stopHop(args, options)
    if (stream == null) return stream
    active++
    metrics.circuitsTotal.inc({ result: 'opened' })
    const send = stream.send.bind(stream)
    stream.send = (data) => { toDestination.inc(data.byteLength); return send(data) }
    const dispatch = stream.dispatchEvent.bind(stream)
    stream.dispatchEvent = (evt: any) => {
      if (evt.type === 'message') toSource.inc(evt.data.byteLength)
      return dispatch(evt)
    }
    const timer = limits.circuit_duration_seconds > 0
      ? setTimeout(() => { stream.abort(new DurationLimitError(`duration limit of ${limits.circuit_duration_seconds} s reached`)) }, limits.circuit_duration_seconds * 1000)
      : undefined
    timer?.unref()
    stream.addEventListener('close', (evt: any) => {
      clearTimeout(timer)
      active--
      metrics.circuitEndsTotal.inc({ reason: endReason(evt.error, opts.isDraining()) })
      if (active === 0) for (const wake of idleWaiters) wake()
    }, { once: true })
    return stream
  }

  return {
    get activeCircuits () { return active },
    dropReservation (peer) {
      const reservation = store.reservations.get(peer)
      if (reservation == null) return
      reservation.signal.clear()
      store.reservations.delete(peer)
      logger.debug({ event: 'reservation_dropped' }, 'reservation dropped: peer disconnected')
    },
    async waitForCircuitsToEnd (signal) {
      if (active === 0 || signal.aborted) return
      await new Promise<void>((resolve) => {
        const done = (): void => { idleWaiters.delete(done); signal.removeEventListener('abort', done); resolve() }
        idleWaiters.add(done)
        signal.addEventListener('abort', done, { once: true })
      })
    }
  }
}
