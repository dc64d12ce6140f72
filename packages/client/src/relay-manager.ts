import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { fetchRelays, rankedCount, rankRelays, relaysToDial, relaysToReserve, type RelayInfo } from './discovery.js'
import { presentTicket, TicketClient } from './tickets.js'
import { backoffDelay } from '@pos-relay/shared'
import { circuitTransportInternals, type CircuitTransportInternals } from '@pos-relay/upstream-patches/circuit-relay-transport'
import type { Connection, Libp2p, PeerId } from '@libp2p/interface'
import {
  DISCOVERY_BACKOFF, FAILURE_REFRESH_MIN_GAP_MS, FAILURE_REFRESH_SPREAD_MS, RESERVE_BACKOFF, RESERVE_TIMEOUT_MS,
  type HeldRelay, type RelayManagerOptions, type UnusableRelay
} from './relay-manager-options.js'

export { FAILOVER_TIMING, type RelayManagerEvent, type RelayManagerOptions } from './relay-manager-options.js'

/**
 * Keeps reservations on the first `relayCount` usable relays of this peer's ranking
 * (docs/protocol.md section 4, "When a relay fails"; `relaysToReserve`).
 *
 * A relay that fails (connect fails or times out, its connection closes and the immediate
 * reconnect fails, ticket or RESERVE refused) is unusable: the next relay of the ranking is
 * reserved on at once, the failed one is retried in the background (0.5 s doubling to 10 s,
 * jittered) and chosen again once a retry holds. Moving back is make-before-break: a relay no
 * longer chosen is released only when every chosen relay holds a reservation. A failure schedules
 * one jittered discovery refresh; relays missing from a fresh list are forgotten.
 *
 * Upstream js-libp2p never re-establishes a relay reservation after the relay connection drops
 * (js-libp2p#3601) and blacklists a relay after one failed dial, so reservations are (re)made here
 * through the transport's internals (patch circuit-relay-transport, UPSTREAM.md).
 */
export class RelayManager {
  private readonly node: Libp2p
  /** the transport internals renewing needs (patch circuit-relay-transport, UPSTREAM.md) */
  private readonly upstream: CircuitTransportInternals
  private readonly opts: Required<Omit<RelayManagerOptions, 'onEvent' | 'apiKey' | 'addressPolicy' | 'random'>> & Pick<RelayManagerOptions, 'onEvent' | 'apiKey' | 'addressPolicy'>
  private readonly random: () => number
  private readonly tickets?: TicketClient
  /** relay peer id -> id of the ticket presented on the current connection */
  private readonly presented = new Map<string, string>()
  /** relay peer id -> relays reserved on, being reserved on, or kept until their replacements hold */
  private readonly held = new Map<string, HeldRelay>()
  /** relay peer id -> relays that failed and have not been retried successfully since */
  private readonly unusable = new Map<string, UnusableRelay>()
  /** relays the circuit transport has a listener for (it keeps it across reservations) */
  private readonly listening = new Set<string>()
  private known: RelayInfo[] = []
  private pollTimer?: NodeJS.Timeout
  private checkTimer?: NodeJS.Timeout
  private failureRefreshTimer?: NodeJS.Timeout
  private lastFailureRefresh = -Infinity
  private readonly controller = new AbortController()
  private running = false
  /**
   * Reservations are made one at a time: with several in flight, upstream's transport loses
   * queued ones (their promises never settle) when one of them fails.
   */
  private reservationQueue: Promise<unknown> = Promise.resolve()
  /** consecutive failed discovery polls; while no relay is known we retry sooner than the poll interval */
  private discoveryFailures = 0
  private nextRetry = 0
  /** discovery requests made (polls, failure refreshes): for benchmarks and tests */
  discoveryRequests = 0
  /** discovery lookups of a dial target's relays (`?for=<target>`), one per dial */
  dialLookups = 0

  constructor (node: Libp2p, opts: RelayManagerOptions) {
    this.node = node
    this.upstream = circuitTransportInternals(node)
    const { random, ...rest } = opts
    this.random = random ?? Math.random
    this.opts = { relayCount: 2, pollIntervalMs: 60_000, checkIntervalMs: 2_000, ...rest }
    if (opts.apiKey != null) this.tickets = new TicketClient({ discoveryUrl: opts.discoveryUrl, apiKey: opts.apiKey, peerId: node.peerId })
  }

  /**
   * With an API key: makes sure `relay` holds our current ticket (connecting
   * to it if needed). A renewed ticket is presented again on the next check.
   */
  async ensureTicket (relay: PeerId, signal?: AbortSignal): Promise<void> {
    if (this.tickets == null) return
    const ticket = await this.tickets.current()
    if (this.presented.get(relay.toString()) === ticket.jti && this.node.getConnections(relay).length > 0) return
    await this.node.dial(relay, signal != null ? { signal } : {})
    await presentTicket(this.node, relay, ticket.token, signal)
    this.presented.set(relay.toString(), ticket.jti)
  }

  /** Fetches relays and reserves; resolves once the first reservation exists (or rejects after `timeoutMs`). */
  async start (opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.running) return
    this.running = true
    this.node.addEventListener('connection:close', this.onConnectionClose)
    await this.refresh()
    this.schedulePoll()
    this.checkTimer = setInterval(() => {
      if (this.known.length === 0 && Date.now() >= this.nextRetry) void this.refresh()
      else this.check()
    }, this.opts.checkIntervalMs)
    this.checkTimer.unref()
    await this.waitForReservation(opts.timeoutMs ?? 20_000)
  }

  /** The regular poll, jittered by ±10 % each time so that clients started together do not poll in step. */
  private schedulePoll (): void {
    if (!this.running) return
    this.pollTimer = setTimeout(() => {
      void this.refresh()
      this.schedulePoll()
    }, this.opts.pollIntervalMs * (0.9 + 0.2 * this.random()))
    this.pollTimer.unref()
  }

  async stop (): Promise<void> {
    this.running = false
    this.controller.abort()
    clearTimeout(this.pollTimer)
    clearInterval(this.checkTimer)
    clearTimeout(this.failureRefreshTimer)
    this.node.removeEventListener('connection:close', this.onConnectionClose)
  }

  /** The relays chosen now (the first relayCount usable ones of our ranking), in preference order. */
  get chosen (): RelayInfo[] {
    return relaysToReserve(this.known, this.node.peerId.toString(), this.opts.relayCount, new Set(this.unusable.keys()))
  }

  /** Relays that failed and have not been retried successfully since. */
  get unusableRelays (): string[] {
    return [...this.unusable.keys()]
  }

  /** The relay list from the last successful poll. */
  get knownRelays (): RelayInfo[] {
    return this.known
  }

  /** Our own `/p2p-circuit` addresses: how other peers reach us through relays. */
  circuitAddresses (): Multiaddr[] {
    return this.node.getMultiaddrs().filter((ma) => ma.toString().includes('/p2p-circuit'))
  }

  hasReservation (relayPeerId: string): boolean {
    return this.circuitAddresses().some((ma) => ma.toString().includes(`/p2p/${relayPeerId}/p2p-circuit`))
  }

  /**
   * Circuit addresses at which `peer` should be reachable: the relays ranked
   * first for its peer id (the same ranking it used to choose its relays).
   */
  addressesFor (peer: PeerId | string, count = this.opts.relayCount): Multiaddr[] {
    const target = peer.toString()
    return rankRelays(this.known, target)
      .slice(0, count)
      .flatMap((relay) => relay.addrs.map((a) => multiaddr(`${a}/p2p-circuit/p2p/${target}`)))
  }

  /**
   * Dials `peer` through the relays it is expected on: its first relayCount ranked relays, then two
   * more (a relay that refuses us, or a list one poll staler than the target's, moves the target
   * down the ranking). DCUtR may later upgrade the connection to a direct one.
   */
  async dial (peer: PeerId | string, options: { signal?: AbortSignal } = {}): Promise<Connection> {
    const target = peer.toString()
    const relays = relaysToDial(await this.relaysFor(target, options.signal), target, this.opts.relayCount)
    if (relays.length === 0) throw new Error('no relays known: is the discovery API reachable?')
    let lastError: unknown
    for (const relay of relays) {
      for (const a of relay.addrs) {
        try {
          await this.ensureTicket(peerIdFromString(relay.peer_id), options.signal)
          return await this.node.dial(multiaddr(`${a}/p2p-circuit/p2p/${target}`), options)
        } catch (err) {
          lastError = err
        }
      }
    }
    throw lastError
  }

  /**
   * The relays ranked for `target` as discovery answers `?for=<target>` (ranked again here, so an
   * older discovery's full list works the same); the last polled list when that lookup fails.
   */
  private async relaysFor (target: string, signal?: AbortSignal): Promise<RelayInfo[]> {
    this.dialLookups++
    try {
      const signals = [this.controller.signal, ...(signal != null ? [signal] : [])]
      const relays = await fetchRelays(this.opts.discoveryUrl, {
        signal: AbortSignal.any(signals),
        for: target,
        count: rankedCount(this.opts.relayCount),
        ...(this.opts.addressPolicy != null ? { addressPolicy: this.opts.addressPolicy } : {})
      })
      if (relays.length > 0) return relays
    } catch (err: any) {
      if (signal?.aborted === true) throw err
      this.opts.onEvent?.({ type: 'discovery_failed', error: err.message })
    }
    return this.known
  }

  async waitForReservation (timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.circuitAddresses().length === 0) {
      if (Date.now() > deadline) throw new Error(`no relay reservation within ${timeoutMs} ms`)
      if (!this.running) throw new Error('relay manager stopped')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  private readonly onConnectionClose = (evt: CustomEvent<Connection>): void => {
    if (this.node.getConnections(evt.detail.remotePeer).length === 0) this.presented.delete(evt.detail.remotePeer.toString())
    if (!this.running || !this.held.has(evt.detail.remotePeer.toString())) return
    // reconnect at once, not at the next tick; the circuit address may outlive the connection by a moment
    setTimeout(() => { this.check() }, 0).unref()
  }

  /** Polls discovery; relays missing from the fresh list are forgotten (no longer retried). */
  async refresh (): Promise<void> {
    let relays: RelayInfo[]
    this.discoveryRequests++
    try {
      // only the relays ranked for us (relayCount + 2: enough to skip two failed ones, section 4)
      relays = await fetchRelays(this.opts.discoveryUrl, {
        signal: this.controller.signal,
        for: this.node.peerId.toString(),
        count: rankedCount(this.opts.relayCount),
        ...(this.opts.addressPolicy != null ? { addressPolicy: this.opts.addressPolicy } : {})
      })
    } catch (err: any) {
      this.discoveryFailures++
      this.nextRetry = Date.now() + backoffDelay(this.discoveryFailures - 1, DISCOVERY_BACKOFF, this.random)
      this.opts.onEvent?.({ type: 'discovery_failed', error: err.message })
      return
    }
    // an empty list backs off like a failure, so clients do not poll every tick
    this.discoveryFailures = relays.length === 0 ? this.discoveryFailures + 1 : 0
    this.nextRetry = Date.now() + backoffDelay(this.discoveryFailures - 1, DISCOVERY_BACKOFF, this.random)
    this.known = relays
    const listed = new Set(relays.map((r) => r.peer_id))
    for (const id of this.unusable.keys()) if (!listed.has(id)) this.unusable.delete(id)
    for (const state of this.held.values()) state.info = relays.find((r) => r.peer_id === state.info.peer_id) ?? state.info
    this.opts.onEvent?.({ type: 'relays', relays: this.chosen.map((r) => r.peer_id) })
    this.check()
    await Promise.all([...this.held.values()].map(async (s) => await s.reserving))
  }

  /** A reservation we can use: the relay gives us a circuit address and we are connected to it. */
  private holds (id: string): boolean {
    return this.hasReservation(id) && this.node.getConnections(peerIdFromString(id)).length > 0
  }

  /**
   * Brings the reservations in line with the rule. Never waits for the network: each reservation
   * attempt runs by itself and calls check again when it ends, so a relay that times out does not
   * hold back the move of another.
   */
  private check (): void {
    if (!this.running) return
    const chosen = this.chosen
    const chosenIds = new Set(chosen.map((r) => r.peer_id))
    for (const info of chosen) {
      const state = this.heldState(info)
      if (this.holds(info.peer_id)) {
        this.keepTicket(state)
        continue
      }
      this.reportLost(state)
      if (state.reserving == null) this.startReserve(state, false)
    }
    // background retries of unusable relays that would be chosen again if the retry holds
    const now = Date.now()
    for (const [id, u] of this.unusable) {
      if (now < u.nextAttempt) continue
      const others = new Set(this.unusable.keys())
      others.delete(id)
      const info = relaysToReserve(this.known, this.node.peerId.toString(), this.opts.relayCount, others).find((r) => r.peer_id === id)
      if (info == null) continue
      const state = this.heldState(info)
      if (state.reserving == null) this.startReserve(state, true)
    }
    // make-before-break: relays no longer chosen go once every chosen relay holds a reservation
    const allHold = chosen.every((r) => this.holds(r.peer_id))
    for (const [id, state] of this.held) {
      if (chosenIds.has(id) || state.reserving != null) continue
      if (this.holds(id)) {
        if (!allHold) continue
        this.held.delete(id)
        state.reported = false
        this.opts.onEvent?.({ type: 'released', relay: id })
        void this.node.hangUp(state.peerId).catch(() => {})
      } else {
        this.reportLost(state)
        this.held.delete(id)
      }
    }
  }

  private heldState (info: RelayInfo): HeldRelay {
    let state = this.held.get(info.peer_id)
    if (state == null) {
      state = { info, peerId: peerIdFromString(info.peer_id), reported: false }
      this.held.set(info.peer_id, state)
    }
    return state
  }

  private reportLost (state: HeldRelay): void {
    if (!state.reported) return
    state.reported = false
    this.opts.onEvent?.({ type: 'reservation_lost', relay: state.info.peer_id })
  }

  /** keeps a renewed ticket presented, or the relay ends our reservation when the old one expires */
  private keepTicket (state: HeldRelay): void {
    if (this.tickets == null || state.ticketing != null) return
    state.ticketing = this.ensureTicket(state.peerId)
      .catch((err: Error) => { this.opts.onEvent?.({ type: 'reserve_failed', relay: state.info.peer_id, error: err.message }) })
      .finally(() => { state.ticketing = undefined })
  }

  private startReserve (state: HeldRelay, retry: boolean): void {
    const id = state.info.peer_id
    state.reserving = this.reserve(state).then((ok) => {
      state.reserving = undefined
      if (ok) this.unusable.delete(id)
      else this.markUnusable(id, retry)
      this.check()
      return ok
    })
  }

  /**
   * A relay failed: unusable until a retry holds. Its first failure schedules one discovery
   * refresh after a uniform 0-2 s delay (the peers of a dead relay must not all hit discovery at
   * once), at most one per 10 s; failed retries schedule none.
   */
  private markUnusable (id: string, retry: boolean): void {
    const u = this.unusable.get(id) ?? { failures: 0, nextAttempt: 0 }
    u.failures++
    u.nextAttempt = Date.now() + backoffDelay(u.failures - 1, RESERVE_BACKOFF, this.random)
    this.unusable.set(id, u)
    if (!retry && u.failures === 1) this.scheduleFailureRefresh()
  }

  private scheduleFailureRefresh (): void {
    if (this.failureRefreshTimer != null || !this.running) return
    const earliest = this.lastFailureRefresh + FAILURE_REFRESH_MIN_GAP_MS
    const delay = Math.max(0, earliest - Date.now()) + this.random() * FAILURE_REFRESH_SPREAD_MS
    this.failureRefreshTimer = setTimeout(() => {
      this.failureRefreshTimer = undefined
      this.lastFailureRefresh = Date.now()
      void this.refresh()
    }, delay)
    this.failureRefreshTimer.unref()
  }

  /** Runs `fn` after the reservations before it; gives up on it (rejects) after RESERVE_TIMEOUT_MS so the queue moves on. */
  private async serially (fn: () => Promise<void>): Promise<void> {
    const run = this.reservationQueue.catch(() => {}).then(async () => {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`no reservation within ${RESERVE_TIMEOUT_MS} ms`)) }, RESERVE_TIMEOUT_MS) })
      try {
        await Promise.race([fn(), timeout])
      } finally {
        clearTimeout(timer)
      }
    })
    this.reservationQueue = run
    await run
  }

  /** Connects to the relay, presents our ticket and reserves; true once the reservation holds. */
  private async reserve (state: HeldRelay): Promise<boolean> {
    const { peerId, info } = state
    try {
      await this.node.peerStore.merge(peerId, { multiaddrs: info.addrs.map((a) => multiaddr(a)) })
      const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(RESERVE_TIMEOUT_MS)])
      await this.ensureTicket(peerId, signal)
      // connect first: a first listen that fails makes the transport drop the state of every
      // reservation it holds (its cancelReservations), so only a reachable relay gets one
      await this.node.dial(peerId, { signal })
      await this.serially(async () => {
        if (!this.listening.has(info.peer_id)) {
          // first time: the transport reserves and adds a listener
          await this.upstream.transportManager().listen([multiaddr(`/p2p/${info.peer_id}/p2p-circuit`)])
          this.listening.add(info.peer_id)
        } else {
          // renew on the existing listener: it re-announces when the transport
          // reports a new 'configured' reservation for its relay
          await this.upstream.renewReservation(peerId, async () => await this.node.dial(peerId, { signal }))
        }
      })
      // the listener announces the circuit address a moment after the reservation
      const deadline = Date.now() + 2_000
      while (!this.holds(info.peer_id) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25))
      if (!this.holds(info.peer_id)) throw new Error('reserved, but no circuit address appeared')
      state.reported = true
      this.opts.onEvent?.({ type: 'reserved', relay: info.peer_id, addrs: this.circuitAddresses().map(String) })
      return true
    } catch (err: any) {
      this.opts.onEvent?.({ type: 'reserve_failed', relay: info.peer_id, error: err.message })
      return false
    }
  }
}
