import { peerIdFromMultihash, peerIdFromString } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { closeHopStream, HopMessage, patchHopServer, type HopContext, type HopHandler, type ReserveResult, type UpstreamRelayServer } from '@pos-relay/upstream-patches/circuit-relay-server'
import { hopStatusCodec, HopStatus, type HopStatusCode } from './hop-status.js'
import { spliceStreams, type CircuitEnd, type Splice } from './splice.js'
import { BufferBudget } from './buffer-budget.js'
import { tickWritesQueuedBytes } from '@pos-relay/upstream-patches/noise-tcp-datapath'
import { isRelayed } from './connection-ip.js'
import { HopAdmission, type AdmissionAccounts, type ConnectAdmitted, type DataLimit } from './hop-admission.js'
import { HopAccounting, type AccountingMeter, type BilledCircuit } from './hop-accounting.js'
import type { RelayMetrics } from './metrics.js'
import type { RelayRateLimiter, SampledLog } from './rate-limits.js'
import type { RelayLimits } from './config.js'
import type { SlotLedger } from './slot-ledger.js'
import type { Logger } from '@pos-relay/shared'
import type { PeerId, Stream } from '@libp2p/interface'
import type { UpstreamReservation } from '@pos-relay/upstream-patches/circuit-relay-server'

export interface HopHooksOptions {
  /** read at each decision: the relay changes this object in place when it reloads its limits (then calls limitsChanged) */
  limits: RelayLimits
  metrics: RelayMetrics
  logger: Logger
  isDraining: () => boolean
  rateLimiter: Pick<RelayRateLimiter, 'allow'>
  denials: Pick<SampledLog, 'note'>
  /**
   * The account a peer relays for, once accounts exist; circuits are then
   * also limited per account (`rate_limits.account_circuits_per_minute`).
   */
  accountOf?: (peer: PeerId) => string | undefined
  /** with auth on: tickets, tiers, quotas and metering (see auth.ts / account-policy.ts) */
  accounts?: AccountPolicy
  /** with `--workers N`: reservations held by the other workers (workers/worker-link.ts) */
  remote?: RemoteHop
}

/** Another worker's side of a circuit, for a relay that runs as several processes. */
export interface RemoteHop {
  /** a new reservation is held on this worker / it ended */
  reserved: (peer: PeerId) => void
  released: (peer: PeerId) => void
  /** the destination end of a circuit opened by the worker holding `dst`'s reservation; a refusal when none does */
  connect: (dst: PeerId, src: PeerId, limit: DataLimit, options: any) => Promise<Destination>
  /** the relay-wide reservation and circuit counts, kept by the primary for all workers */
  slots: SlotLedger
  /** whether `peer` is the destination of a circuit another worker admitted (drain: its reservation is not idle) */
  carries: (peer: string) => boolean
  /** resolves when no circuit another worker admitted runs through this one, or at the signal */
  waitIdle: (signal: AbortSignal) => Promise<void>
}

/** A circuit's destination end (a STOP stream, or the socket to the worker that opened it), or why there is none. */
export type Destination = { stream: Stream, reservation?: UpstreamReservation } | { status: HopStatusCode, reason: string }

/** Account rules the hooks apply when auth is on: admission's and accounting's. */
export interface AccountPolicy extends AdmissionAccounts, AccountingMeter {}

export interface HopHooks {
  /** circuits currently relayed */
  readonly activeCircuits: number
  /** forget the reservation of a peer whose last connection closed */
  dropReservation: (peer: PeerId) => void
  /** resolves when no circuit is open, or at the signal */
  waitForCircuitsToEnd: (signal: AbortSignal) => Promise<void>
  /** ends every open circuit (relay stop) */
  abortCircuits: (reason: Error) => void
  /** ends a peer's reservation and every circuit it is part of (revocation) */
  revokePeer: (peer: PeerId, reason: string) => void
  /** whether `peer` holds a reservation here and is neither end of an open circuit (drain: it can move at once) */
  holdsIdleReservation: (peer: PeerId) => boolean
  /**
   * Called every metering interval: bills reservation- and circuit-seconds
   * accrued since the last tick, and cuts circuits of accounts whose
   * monthly quota was used up (possibly on other relays).
   */
  tick: () => Promise<void>
  /** `limits` changed in place (limits file): applies what is not read at each decision (the buffer budget) */
  limitsChanged: () => void
  /** opens the STOP stream to `dst`, reserved here, for a circuit another worker admitted (its limits apply there) */
  openDestination: (dst: PeerId, src: PeerId, limit: DataLimit, options: any) => Promise<Destination>
}

interface Circuit extends BilledCircuit {
  abort: (reason: Error) => void
  src: string
  dst: string
}

/**
 * Puts the relay's policy into upstream's hop server: admission (hop-admission.ts)
 * decides, accounting (hop-accounting.ts) counts and bills, and this module
 * answers HOP requests, opens circuits (splice.ts) and keeps the open ones.
 */
export function installHopHooks (service: unknown, opts: HopHooksOptions): HopHooks {
  const { limits, metrics, logger, accounts } = opts
  // upstream's CONNECT is replaced, its RESERVE and reserve() wrapped (UPSTREAM.md, circuit-relay-server)
  const server: UpstreamRelayServer = patchHopServer(service, {
    handleReserve: async (ctx, options, upstream) => { await handleReserve(ctx, options, upstream) },
    handleConnect: async (ctx, options) => { await handleConnect(ctx, options) },
    reserve: (peer, addr, upstream) => reserve(peer, addr, upstream)
  })
  const store = server.reservationStore
  const circuits = new Set<Circuit>()
  const budget = new BufferBudget(limits.max_buffered_bytes, tickWritesQueuedBytes)
  const admission = new HopAdmission({
    limits,
    isDraining: opts.isDraining,
    rateLimiter: opts.rateLimiter,
    ...(accounts != null ? { accounts } : {}),
    ...(opts.accountOf != null ? { accountOf: opts.accountOf } : {}),
    hasReservation: (peer) => store.reservations.get(peer) != null,
    buffersExhausted: () => budget.exhausted,
    ...(opts.remote != null ? { ledger: opts.remote.slots } : {})
  })
  const accounting = new HopAccounting({
    bytes: { toDestination: metrics.relayedBytesTotal.labels('to_destination'), toSource: metrics.relayedBytesTotal.labels('to_source') },
    meteredBytes: { toDestination: metrics.meteredBytesTotal.labels('to_destination'), toSource: metrics.meteredBytesTotal.labels('to_source') },
    ...(accounts != null ? { accounts } : {})
  })
  const idleWaiters = new Set<() => void>()
  metrics.sources.reservations = () => store.reservations.size
  metrics.sources.circuits = () => circuits.size
  metrics.sources.bufferedBytes = () => budget.bytes

  const refuse = async (ctx: HopContext, options: any, status: HopStatusCode, reason: string): Promise<void> => {
    metrics.denialsTotal.inc({ reason })
    opts.denials.note(reason)
    await ctx.stream.write(status, hopStatusCodec, options)
    // nothing follows a refusal: end our side so the client's read ends (UPSTREAM.md, circuit-relay-server bug 4)
    await closeHopStream(ctx.stream, options)
  }

  /** the limit to announce for a reservation being made, set while upstream makes it */
  const limitOf = new Map<string, DataLimit>()
  const handleReserve = async (ctx: HopContext, options: any, upstream: HopHandler): Promise<void> => {
    const peer = ctx.connection.remotePeer
    const admitted = await admission.reserve(peer)
    if (!admitted.ok) {
      metrics.reservationsTotal.inc({ result: admitted.result })
      await refuse(ctx, options, admitted.status, admitted.reason)
      return
    }
    if (admitted.who != null) limitOf.set(peer.toString(), admitted.limit)
    let made = false
    try {
      await upstream(ctx, options)
      await closeHopStream(ctx.stream, options)
    } finally {
      limitOf.delete(peer.toString())
      made = store.reservations.get(peer) != null
      // not made after all: gives back the account's slot and (workers) the relay-wide one
      if (!made) admitted.release()
    }
    if (made && admitted.who != null) accounting.reservationMade(peer, admitted.who.account)
  }

  const reserve = (peer: PeerId, addr: unknown, upstream: (peer: PeerId, addr: unknown) => ReserveResult): ReserveResult => {
    const existed = store.reservations.get(peer) != null
    // the reservation cap is ours, not upstream's store's (built once with its
    // maxReservations), so that a reloaded max_reservations applies at once;
    // same rule: a refresh always passes, a new reservation only below the cap
    const result = !existed && store.reservations.size >= limits.max_reservations ? { status: 'RESERVATION_REFUSED' } : upstream(peer, addr)
    // upstream's protons codec uses string enum values ('OK')
    if (result.status === 'OK' || result.status === HopStatus.OK) {
      const reservation = store.reservations.get(peer)
      if (reservation != null) reservation.limit = limitOf.has(peer.toString()) ? limitOf.get(peer.toString()) : admission.dataLimit()
      if (reservation != null && !existed && opts.remote != null) {
        const remote = opts.remote
        remote.reserved(peer)
        reservation.signal.addEventListener('abort', () => { remote.released(peer) }, { once: true })
      }
      metrics.reservationsTotal.inc({ result: existed ? 'refreshed' : 'ok' })
    } else {
      metrics.reservationsTotal.inc({ result: 'refused' })
      metrics.denialsTotal.inc({ reason: 'reservation_limit' })
    }
    return result
  }

  /**
   * CONNECT, replacing upstream's handleConnect (UPSTREAM.md: its pipe() holds
   * a circuit's whole payload in memory, and it relays over `connections[0]`).
   * We splice the streams with pause/resume backpressure, which bounds memory
   * by the yamux windows, and pick an open, direct connection to the destination.
   */
  const handleConnect = async (ctx: HopContext, options: any): Promise<void> => {
    const fail = async (status: HopStatusCode, reason: string): Promise<void> => {
      metrics.circuitsTotal.inc({ result: status === HopStatus.RESOURCE_LIMIT_EXCEEDED || status === HopStatus.PERMISSION_DENIED ? 'denied' : 'failed' })
      await refuse(ctx, options, status, reason)
    }
    // no await before admission: it takes the circuit slot synchronously
    const admitted = await admission.connect(ctx.connection)
    if (!admitted.ok) { await fail(admitted.status, admitted.reason); return }
    let opened = false
    try {
      opened = await openCircuit(ctx, options, fail, admitted)
    } finally {
      if (!opened) admitted.releaseSlot()
    }
  }

  /** the rest of an admitted CONNECT; true once the circuit is open (its end then releases the slot) */
  const openCircuit = async (ctx: HopContext, options: any, fail: (status: HopStatusCode, reason: string) => Promise<void>, admitted: ConnectAdmitted): Promise<boolean> => {
    const { connection, request } = ctx
    const { limit, who } = admitted
    let dst: PeerId
    try {
      if (request.peer?.id == null) throw new Error('no peer in CONNECT')
      dst = peerIdFromMultihash(Digest.decode(request.peer.id))
    } catch {
      await fail(HopStatus.MALFORMED_MESSAGE, 'malformed'); return false
    }
    if (store.reservations.get(dst) == null && opts.remote == null) { await fail(HopStatus.NO_RESERVATION, 'no_reservation'); return false }
    if ((await server.components.connectionGater.denyOutboundRelayedConnection?.(connection.remotePeer, dst)) === true) {
      await fail(HopStatus.PERMISSION_DENIED, 'gater'); return false
    }
    // reserved on another worker: that worker opens the STOP stream, we splice to it (workers/)
    const destination = store.reservations.get(dst) == null && opts.remote != null
      ? await opts.remote.connect(dst, connection.remotePeer, limit, options)
      : await openDestination(dst, connection.remotePeer, limit, options)
    if (!('stream' in destination)) { await fail(destination.status, destination.reason); return false }
    const { stream: dstStream, reservation } = destination
    try {
      await ctx.stream.pb(HopMessage).write({ type: 'STATUS', status: 'OK', ...(limit != null ? { limit } : {}) }, options)
    } catch (err: any) {
      dstStream.abort(err)
      metrics.circuitsTotal.inc({ result: 'failed' })
      return false
    }
    // after the last protobuf write: unwrapping hands back any bytes read past the request
    const srcStream = ctx.stream.unwrap()
    metrics.circuitsTotal.inc({ result: 'opened' })

    // metered to the ticket's account only (an accountOf account is for rate limits)
    const circuit: Circuit = { abort: () => {}, src: connection.remotePeer.toString(), dst: dst.toString(), ...accounting.circuitOpened(who?.account) }
    const bytes = accounting.circuitBytes(circuit)
    // set once spliceStreams returns; onEnd may in principle run before that
    // eslint-disable-next-line prefer-const -- onEnd (a closure made before the assignment) reads it
    let splice: Splice | undefined
    let ended = false
    const onEnd = (end: CircuitEnd): void => {
      ended = true
      circuits.delete(circuit)
      admitted.releaseSlot()
      if (splice != null) budget.delete(splice)
      reservation?.signal.removeEventListener('abort', onReservationEnd)
      accounting.circuitEnded(circuit)
      const reason = (end.reason === 'data_limit' && admitted.quotaBound) || end.error?.name === 'QuotaExceededError' ? 'quota' : end.reason === 'error' && opts.isDraining() ? 'shutdown' : end.reason
      metrics.circuitEndsTotal.inc({ reason })
      logger.debug({ event: 'circuit_end', reason, err: end.error?.message, bytes_to_destination: end.bytesToDestination, bytes_to_source: end.bytesToSource }, 'circuit closed')
      if (circuits.size === 0) for (const wake of idleWaiters) wake()
    }
    splice = spliceStreams(srcStream, dstStream, {
      dataLimit: limit != null ? Number(limit.data) : 0,
      durationMs: admitted.durationSeconds * 1000,
      idleTimeoutMs: limits.circuit_idle_timeout_seconds * 1000,
      onBytesToDestination: bytes.toDestination,
      onBytesToSource: bytes.toSource,
      onEnd
    })
    circuit.abort = splice.abort
    if (!ended) budget.add(splice)
    // the destination's reservation ending (expiry, disconnect) ends its circuits
    const onReservationEnd = (): void => { circuit.abort(new Error('reservation ended')) }
    reservation?.signal.addEventListener('abort', onReservationEnd, { once: true })
    circuits.add(circuit)
    return true
  }

  /** the STOP stream to `dst`, over its newest open direct connection, with the circuit's limit announced */
  const openDestination = async (dst: PeerId, src: PeerId, limit: DataLimit, options: any): Promise<Destination> => {
    const reservation = store.reservations.get(dst)
    if (reservation == null) return { status: HopStatus.NO_RESERVATION, reason: 'no_reservation' }
    const dstConnection = server.components.connectionManager.getConnections(dst)
      .filter((c) => c.status === 'open' && !isRelayed(c))
      .sort((a, b) => b.timeline.open - a.timeline.open)[0]
    if (dstConnection == null) return { status: HopStatus.NO_RESERVATION, reason: 'no_reservation' }
    const stream = await server.stopHop({
      connection: dstConnection,
      request: { type: 'CONNECT', peer: { id: src.toMultihash().bytes, addrs: [] }, ...(limit != null ? { limit } : {}) }
    }, options).catch(() => undefined)
    if (stream == null) return { status: HopStatus.CONNECTION_FAILED, reason: 'connection_failed' }
    return { stream, reservation }
  }

  const waitForOwnCircuits = async (signal: AbortSignal): Promise<void> => {
    if (circuits.size === 0 || signal.aborted) return
    await new Promise<void>((resolve) => {
      const done = (): void => { idleWaiters.delete(done); signal.removeEventListener('abort', done); resolve() }
      idleWaiters.add(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  const dropReservation = (peer: PeerId): void => {
    accounting.reservationEnded(peer)
    const reservation = store.reservations.get(peer)
    if (reservation == null) return
    reservation.signal.clear()
    store.reservations.delete(peer)
    opts.remote?.released(peer)
    logger.debug({ event: 'reservation_dropped' }, 'reservation dropped')
  }

  return {
    get activeCircuits () { return circuits.size },
    openDestination,
    dropReservation,
    async waitForCircuitsToEnd (signal) {
      // circuits other workers admitted end when theirs do: wait for both
      await Promise.all([waitForOwnCircuits(signal), opts.remote?.waitIdle(signal)])
    },
    abortCircuits (reason) {
      for (const c of [...circuits]) c.abort(reason)
    },
    holdsIdleReservation (peer) {
      if (store.reservations.get(peer) == null) return false
      const id = peer.toString()
      if (opts.remote?.carries(id) === true) return false
      for (const c of circuits) if (c.src === id || c.dst === id) return false
      return true
    },
    revokePeer (peer, reason) {
      const id = peer.toString()
      for (const c of [...circuits]) if (c.src === id || c.dst === id) c.abort(new Error(reason))
      dropReservation(peer)
    },
    limitsChanged () {
      budget.setLimit(limits.max_buffered_bytes)
    },
    async tick () {
      if (accounts == null) return
      accounting.tickReservations(
        (peer) => store.reservations.get(peer) != null,
        // a ticket that expired without being renewed ends the reservation
        (peer) => accounts.identify(peer) != null,
        (peer) => { metrics.denialsTotal.inc({ reason: 'ticket_expired' }); dropReservation(peer) }
      )
      // quotas are shared: another relay may have used up what this one allowed
      for (const [account, list] of accounting.tickCircuits(circuits)) {
        if (!(await admission.quotaUsedUp(peerIdFromString(list[0]!.src), account))) continue
        for (const c of list) c.abort(new QuotaExceededError('monthly quota of account used up'))
      }
    }
  }
}

export class QuotaExceededError extends Error {
  override name = 'QuotaExceededError'
}
