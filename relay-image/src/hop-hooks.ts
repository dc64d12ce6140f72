import { peerIdFromMultihash, peerIdFromString } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { hopStatusCodec, HopStatus, type HopStatusCode } from './hop-status.js'
import { spliceStreams, type CircuitEnd, type Splice } from './splice.js'
import { CircuitSlots } from './circuit-slots.js'
import { BufferBudget } from './buffer-budget.js'
import type { RelayMetrics } from './metrics.js'
import type { RelayRateLimiter, SampledLog } from './rate-limits.js'
import type { RelayLimits } from './config.js'
import type { Logger } from '@pos-relay/shared'
import type { Connection, PeerId } from '@libp2p/interface'
import type { Tier, UsageDelta } from '@pos-relay/accounts'
import { ipOf } from './connection-ip.js'
import { closeHopStream, HopMessage, patchHopServer, type HopContext, type HopHandler, type ReserveResult } from '@pos-relay/upstream-patches/circuit-relay-server'

export interface HopHooksOptions {
  limits: RelayLimits
  metrics: RelayMetrics
  logger: Logger
  isDraining: () => boolean
  rateLimiter: RelayRateLimiter
  denials: SampledLog
  /**
   * The account a peer relays for, once accounts exist; circuits are then
   * also limited per account (`rate_limits.account_circuits_per_minute`).
   */
  accountOf?: (peer: PeerId) => string | undefined
  /** with auth on: tickets, tiers, quotas and metering (see auth.ts / account-policy.ts) */
  accounts?: AccountPolicy
}

/** Account rules the hooks apply when auth is on. */
export interface AccountPolicy {
  /** account and tier of a peer that presented a valid ticket; undefined: refuse */
  identify: (peer: PeerId) => { account: string, tier: Tier } | undefined
  /** fleet-wide admission of one more reservation for the account (tier.max_reservations) */
  admitReservation: (account: string, peer: PeerId, tier: Tier) => Promise<boolean>
  releaseReservation: (account: string, peer: PeerId) => void
  /** bytes the account may still relay this month; Infinity when unlimited */
  remainingBytes: (account: string, tier: Tier) => Promise<number>
  meter: (account: string, delta: Partial<UsageDelta>) => void
}

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
  /**
   * Called every metering interval: bills reservation- and circuit-seconds
   * accrued since the last tick, and cuts circuits of accounts whose
   * monthly quota was used up (possibly on other relays).
   */
  tick: () => Promise<void>
}

interface Circuit {
  abort: (reason: Error) => void
  src: string
  dst: string
  account?: string
  lastBilled: number
}

const isCircuit = (conn: Connection): boolean => conn.remoteAddr.toString().includes('/p2p-circuit')


export function installHopHooks (service: unknown, opts: HopHooksOptions): HopHooks {
  // upstream's CONNECT is replaced, its RESERVE and reserve() wrapped (UPSTREAM.md, circuit-relay-server)
  const server = patchHopServer(service, {
    handleReserve: async (ctx, options, upstream) => { await handleReserve(ctx, options, upstream) },
    handleConnect: async (ctx, options) => { await handleConnect(ctx, options) },
    reserve: (peer, addr, upstream) => reserve(peer, addr, upstream)
  })
  const store = server.reservationStore

  const { limits, metrics, logger } = opts
  const circuits = new Set<Circuit>()
  const slots = new CircuitSlots(limits)
  const budget = new BufferBudget(limits.max_buffered_bytes)
  /** reservations made with auth on: who pays for them, billed since when */
  const reservationAccounts = new Map<string, { account: string, peer: PeerId, lastBilled: number }>()
  const accounts = opts.accounts
  const idleWaiters = new Set<() => void>()
  const bytesTo = {
    destination: metrics.relayedBytesTotal.labels('to_destination'),
    source: metrics.relayedBytesTotal.labels('to_source')
  }
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

  // RESERVE: refuse while draining so clients move to another relay
  const handleReserve = async (ctx: HopContext, options: any, upstream: HopHandler): Promise<void> => {
    if (opts.isDraining()) {
      metrics.reservationsTotal.inc({ result: 'refused' })
      await refuse(ctx, options, HopStatus.RESERVATION_REFUSED, 'draining')
      return
    }
    const peer = ctx.connection.remotePeer
    if (!(await opts.rateLimiter.allow('peer_reservation', peer.toString()))) {
      metrics.reservationsTotal.inc({ result: 'refused' })
      await refuse(ctx, options, HopStatus.RESOURCE_LIMIT_EXCEEDED, 'peer_reservation_rate')
      return
    }
    if (accounts == null) { await upstream(ctx, options); await closeHopStream(ctx.stream, options); return }
    const who = accounts.identify(peer)
    if (who == null) {
      metrics.reservationsTotal.inc({ result: 'denied' })
      await refuse(ctx, options, HopStatus.PERMISSION_DENIED, 'no_ticket')
      return
    }
    const refreshing = store.reservations.get(peer) != null
    if (!refreshing && !(await accounts.admitReservation(who.account, peer, who.tier))) {
      metrics.reservationsTotal.inc({ result: 'refused' })
      await refuse(ctx, options, HopStatus.RESOURCE_LIMIT_EXCEEDED, 'account_reservations')
      return
    }
    limitOf.set(peer.toString(), circuitDataLimit(who.tier))
    try {
      await upstream(ctx, options)
      await closeHopStream(ctx.stream, options)
    } finally {
      limitOf.delete(peer.toString())
    }
    if (store.reservations.get(peer) != null) {
      if (!reservationAccounts.has(peer.toString())) reservationAccounts.set(peer.toString(), { account: who.account, peer, lastBilled: Date.now() })
    } else if (!refreshing) {
      accounts.releaseReservation(who.account, peer)
    }
  }

  // Upstream applies one default limit with the duration in ms, but writes
  // that number unchanged into the wire `Limit.duration`, which is in seconds
  // (a 2 min limit is announced as 120000 s). So we announce only the data
  // limit and enforce the duration ourselves.
  const dataLimit = limits.circuit_data_limit_bytes > 0 ? { data: BigInt(limits.circuit_data_limit_bytes) } : undefined
  const circuitDataLimit = (tier?: Tier): { data: bigint } | undefined =>
    tier != null && tier.circuit_data_limit_bytes > 0 ? { data: BigInt(tier.circuit_data_limit_bytes) } : dataLimit
  /** the limit to announce for a reservation being made (per tier with auth on) */
  const limitOf = new Map<string, { data: bigint } | undefined>()
  const reserve = (peer: PeerId, addr: unknown, upstream: (peer: PeerId, addr: unknown) => ReserveResult): ReserveResult => {
    const existed = store.reservations.get(peer) != null
    const result = upstream(peer, addr)
    // upstream's protons codec uses string enum values ('OK')
    if (result.status === 'OK' || result.status === HopStatus.OK) {
      const reservation = store.reservations.get(peer)
      if (reservation != null) reservation.limit = limitOf.has(peer.toString()) ? limitOf.get(peer.toString()) : dataLimit
      metrics.reservationsTotal.inc({ result: existed ? 'refreshed' : 'ok' })
    } else {
      metrics.reservationsTotal.inc({ result: 'refused' })
      metrics.denialsTotal.inc({ reason: 'reservation_limit' })
    }
    return result
  }

  /**
   * CONNECT, replacing upstream's handleConnect. Upstream joins the two
   * streams with `pipe(src, dst, src)`, which wraps the source stream twice;
   * the second wrapper queues every incoming chunk and is never read, so a
   * circuit holds about its whole payload in memory until it closes (measured:
   * ~400 MiB for a 256 MiB transfer). We splice the streams ourselves with
   * pause/resume backpressure, which bounds memory by the yamux windows.
   * Also: answer RESOURCE_LIMIT_EXCEEDED over max_circuits (and the per-peer
   * and per-IP caps), and pick an open,
   * direct connection to the destination rather than `connections[0]`.
   */
  const stopHop = server.stopHop
  const handleConnect = async (ctx: HopContext, options: any): Promise<void> => {
    const { connection, request } = ctx
    const fail = async (status: HopStatusCode, reason: string): Promise<void> => {
      metrics.circuitsTotal.inc({ result: status === HopStatus.RESOURCE_LIMIT_EXCEEDED || status === HopStatus.PERMISSION_DENIED ? 'denied' : 'failed' })
      await refuse(ctx, options, status, reason)
    }
    if (isCircuit(connection)) { await fail(HopStatus.PERMISSION_DENIED, 'relayed_source'); return }
    // a circuit would add to buffers already at the relay-wide budget
    if (budget.exhausted) { await fail(HopStatus.RESOURCE_LIMIT_EXCEEDED, 'buffer_budget'); return }
    // taken now, before the first await: see CircuitSlots
    const slot = slots.take(connection.remotePeer.toString(), ipOf(connection))
    if (!slot.ok) { await fail(HopStatus.RESOURCE_LIMIT_EXCEEDED, slot.reason); return }
    let opened = false
    try {
      opened = await openCircuit(ctx, options, fail, slot.release)
    } finally {
      if (!opened) slot.release()
    }
  }

  /** the rest of CONNECT, holding a slot; true once the circuit is open (its end then releases the slot) */
  const openCircuit = async (ctx: HopContext, options: any, fail: (status: HopStatusCode, reason: string) => Promise<void>, releaseSlot: () => void): Promise<boolean> => {
    const { connection, request } = ctx
    if (!(await opts.rateLimiter.allow('peer_circuit', connection.remotePeer.toString()))) {
      await fail(HopStatus.RESOURCE_LIMIT_EXCEEDED, 'peer_circuit_rate'); return false
    }
    const who = accounts?.identify(connection.remotePeer)
    if (accounts != null && who == null) { await fail(HopStatus.PERMISSION_DENIED, 'no_ticket'); return false }
    const account = who?.account ?? opts.accountOf?.(connection.remotePeer)
    if (account != null && !(await opts.rateLimiter.allow('account_circuit', account))) {
      await fail(HopStatus.RESOURCE_LIMIT_EXCEEDED, 'account_circuit_rate'); return false
    }
    // the circuit's data limit: the tier's (or the relay's), and never more than the quota left
    let circuitLimit = circuitDataLimit(who?.tier)
    let quotaBound = false
    if (who != null && who.tier.monthly_bytes > 0) {
      const remaining = await accounts!.remainingBytes(who.account, who.tier)
      if (remaining <= 0) { await fail(HopStatus.RESOURCE_LIMIT_EXCEEDED, 'quota'); return false }
      if (circuitLimit == null || BigInt(Math.floor(remaining)) < circuitLimit.data) {
        circuitLimit = { data: BigInt(Math.floor(remaining)) }
        quotaBound = true
      }
    }
    const durationSeconds = who != null && who.tier.circuit_duration_seconds > 0 ? who.tier.circuit_duration_seconds : limits.circuit_duration_seconds
    let dst: PeerId
    try {
      if (request.peer?.id == null) throw new Error('no peer in CONNECT')
      dst = peerIdFromMultihash(Digest.decode(request.peer.id))
    } catch {
      await fail(HopStatus.MALFORMED_MESSAGE, 'malformed'); return false
    }
    const reservation = store.reservations.get(dst)
    if (reservation == null) { await fail(HopStatus.NO_RESERVATION, 'no_reservation'); return false }
    if ((await server.components.connectionGater.denyOutboundRelayedConnection?.(connection.remotePeer, dst)) === true) {
      await fail(HopStatus.PERMISSION_DENIED, 'gater'); return false
    }
    const dstConnection = server.components.connectionManager.getConnections(dst)
      .filter((c) => c.status === 'open' && !isCircuit(c))
      .sort((a, b) => b.timeline.open - a.timeline.open)[0]
    if (dstConnection == null) { await fail(HopStatus.NO_RESERVATION, 'no_reservation'); return false }

    const dstStream = await stopHop({
      connection: dstConnection,
      request: { type: 'CONNECT', peer: { id: connection.remotePeer.toMultihash().bytes, addrs: [] }, ...(circuitLimit != null ? { limit: circuitLimit } : {}) }
    }, options).catch(() => undefined)
    if (dstStream == null) { await fail(HopStatus.CONNECTION_FAILED, 'connection_failed'); return false }
    try {
      await ctx.stream.pb(HopMessage).write({ type: 'STATUS', status: 'OK', ...(circuitLimit != null ? { limit: circuitLimit } : {}) }, options)
    } catch (err: any) {
      dstStream.abort(err)
      metrics.circuitsTotal.inc({ result: 'failed' })
      return false
    }
    // after the last protobuf write: unwrapping hands back any bytes read past the request
    const srcStream = ctx.stream.unwrap()
    metrics.circuitsTotal.inc({ result: 'opened' })

    if (account != null) accounts?.meter(account, { circuits: 1 })
    const circuit: Circuit = { abort: () => {}, src: connection.remotePeer.toString(), dst: dst.toString(), ...(who != null ? { account: who.account } : {}), lastBilled: Date.now() }
    // set once spliceStreams returns; onEnd may in principle run before that
    let splice: Splice | undefined
    let ended = false
    const onEnd = (end: CircuitEnd): void => {
      ended = true
      circuits.delete(circuit)
      releaseSlot()
      if (splice != null) budget.delete(splice)
      reservation.signal.removeEventListener('abort', onReservationEnd)
      if (who != null) accounts!.meter(who.account, { circuit_seconds: (Date.now() - circuit.lastBilled) / 1000 })
      const reason = (end.reason === 'data_limit' && quotaBound) || end.error?.name === 'QuotaExceededError' ? 'quota' : end.reason === 'error' && opts.isDraining() ? 'shutdown' : end.reason
      metrics.circuitEndsTotal.inc({ reason })
      logger.debug({ event: 'circuit_end', reason, err: end.error?.message, bytes_to_destination: end.bytesToDestination, bytes_to_source: end.bytesToSource }, 'circuit closed')
      if (circuits.size === 0) for (const wake of idleWaiters) wake()
    }
    splice = spliceStreams(srcStream, dstStream, {
      dataLimit: circuitLimit != null ? Number(circuitLimit.data) : 0,
      durationMs: durationSeconds * 1000,
      idleTimeoutMs: limits.circuit_idle_timeout_seconds * 1000,
      onBytesToDestination: (n) => {
        bytesTo.destination.inc(n)
        if (who != null) accounts!.meter(who.account, { bytes_to_destination: n })
      },
      onBytesToSource: (n) => {
        bytesTo.source.inc(n)
        if (who != null) accounts!.meter(who.account, { bytes_to_source: n })
      },
      onEnd
    })
    circuit.abort = splice.abort
    if (!ended) budget.add(splice)
    // the destination's reservation ending (expiry, disconnect) ends its circuits
    const onReservationEnd = (): void => { circuit.abort(new Error('reservation ended')) }
    reservation.signal.addEventListener('abort', onReservationEnd, { once: true })
    circuits.add(circuit)
    return true
  }

  const releaseReservation = (peer: PeerId): void => {
    const billed = reservationAccounts.get(peer.toString())
    if (billed == null) return
    reservationAccounts.delete(peer.toString())
    accounts?.meter(billed.account, { reservation_seconds: (Date.now() - billed.lastBilled) / 1000 })
    accounts?.releaseReservation(billed.account, peer)
  }

  const dropReservation = (peer: PeerId): void => {
    releaseReservation(peer)
    const reservation = store.reservations.get(peer)
    if (reservation == null) return
    reservation.signal.clear()
    store.reservations.delete(peer)
    logger.debug({ event: 'reservation_dropped' }, 'reservation dropped')
  }

  return {
    get activeCircuits () { return circuits.size },
    dropReservation,
    async waitForCircuitsToEnd (signal) {
      if (circuits.size === 0 || signal.aborted) return
      await new Promise<void>((resolve) => {
        const done = (): void => { idleWaiters.delete(done); signal.removeEventListener('abort', done); resolve() }
        idleWaiters.add(done)
        signal.addEventListener('abort', done, { once: true })
      })
    },
    abortCircuits (reason) {
      for (const c of [...circuits]) c.abort(reason)
    },
    revokePeer (peer, reason) {
      const id = peer.toString()
      for (const c of [...circuits]) if (c.src === id || c.dst === id) c.abort(new Error(reason))
      dropReservation(peer)
    },
    async tick () {
      if (accounts == null) return
      const now = Date.now()
      for (const r of reservationAccounts.values()) {
        // a reservation also ends by expiry, which upstream does silently
        if (store.reservations.get(r.peer) == null) { releaseReservation(r.peer); continue }
        // a ticket that expired without being renewed ends the reservation
        if (accounts.identify(r.peer) == null) { metrics.denialsTotal.inc({ reason: 'ticket_expired' }); dropReservation(r.peer); continue }
        accounts.meter(r.account, { reservation_seconds: (now - r.lastBilled) / 1000 })
        r.lastBilled = now
      }
      const byAccount = new Map<string, Circuit[]>()
      for (const c of circuits) {
        if (c.account == null) continue
        accounts.meter(c.account, { circuit_seconds: (now - c.lastBilled) / 1000 })
        c.lastBilled = now
        byAccount.set(c.account, [...(byAccount.get(c.account) ?? []), c])
      }
      // quotas are shared: another relay may have used up what this one allowed
      for (const [account, list] of byAccount) {
        const peer = list[0]!.src
        const who = accounts.identify(peerIdFromString(peer))
        if (who == null || who.tier.monthly_bytes <= 0) continue
        if (await accounts.remainingBytes(account, who.tier) > 0) continue
        for (const c of list) c.abort(new QuotaExceededError(`monthly quota of account used up`))
      }
    }
  }
}

export class QuotaExceededError extends Error {
  override name = 'QuotaExceededError'
}
