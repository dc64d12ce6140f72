import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { fetchRelays, rankRelays, relaysToDial, type RelayInfo } from './discovery.js'
import { presentTicket, TicketClient } from './tickets.js'
import { backoffDelay, type AddressPolicy } from '@pos-relay/shared'
import { circuitTransportInternals, type CircuitTransportInternals } from '@pos-relay/upstream-patches/circuit-relay-transport'
import type { Connection, Libp2p, PeerId } from '@libp2p/interface'

export interface RelayManagerOptions {
  /** base URL of the discovery API, e.g. http://127.0.0.1:8080 */
  discoveryUrl: string
  /** relays to hold a reservation on at once (default 2) */
  relayCount?: number
  /** how often to refresh the relay list (default 60 s; the original client polled every 11 min) */
  pollIntervalMs?: number
  /** how often to verify reservations are alive (default 2 s) */
  checkIntervalMs?: number
  /** the account's API key: with it the manager gets relay tickets and presents them before reserving and dialing */
  apiKey?: string
  /**
   * Relay addrs the manager may dial (the discovery API's policy): unspecified, link-local, multicast
   * and broadcast addrs are always dropped; `{ publicOnly: true }` drops loopback and private ones too.
   */
  addressPolicy?: AddressPolicy
  /** log hook; default silent */
  onEvent?: (event: RelayManagerEvent) => void
}

export type RelayManagerEvent =
  | { type: 'relays', relays: string[] }
  | { type: 'reserved', relay: string, addrs: string[] }
  | { type: 'reservation_lost', relay: string }
  | { type: 'reserve_failed', relay: string, error: string }
  | { type: 'discovery_failed', error: string }

interface RelayState {
  info: RelayInfo
  peerId: PeerId
  /** a circuit listener exists for this relay (transport keeps it across reservations) */
  listening: boolean
  failures: number
  nextAttempt: number
  reserving?: Promise<void>
}

/** discovery polls after failures (or empty lists): 1 s doubling to 30 s, jittered */
const DISCOVERY_BACKOFF = { initialMs: 1000, maxMs: 30_000 }
/** re-reserving on a relay that failed: 0.5 s doubling to 10 s, jittered */
const RESERVE_BACKOFF = { initialMs: 500, maxMs: 10_000 }

/**
 * Keeps reservations on `relayCount` relays chosen from the discovery API.
 *
 * Upstream js-libp2p never re-establishes a relay reservation after the
 * relay connection drops (js-libp2p#3601), and after one failed dial it
 * blacklists the relay for good. This manager checks every few seconds (and
 * at once when a relay connection closes) that each chosen relay still gives
 * us a `/p2p-circuit` address, and if not reconnects with backoff and renews
 * the reservation on the transport's existing listener.
 */
export class RelayManager {
  private readonly node: Libp2p
  /** the transport internals renewing needs (patch circuit-relay-transport, UPSTREAM.md) */
  private readonly upstream: CircuitTransportInternals
  private readonly opts: Required<Omit<RelayManagerOptions, 'onEvent' | 'apiKey' | 'addressPolicy'>> & Pick<RelayManagerOptions, 'onEvent' | 'apiKey' | 'addressPolicy'>
  private readonly tickets?: TicketClient
  /** relay peer id -> id of the ticket presented on the current connection */
  private readonly presented = new Map<string, string>()
  private readonly relays = new Map<string, RelayState>()
  private known: RelayInfo[] = []
  private pollTimer?: NodeJS.Timeout
  private checkTimer?: NodeJS.Timeout
  private readonly controller = new AbortController()
  private running = false
  /** first-time circuit listens run one at a time: concurrent transportManager.listen calls for circuit addresses can hang */
  private listenQueue: Promise<unknown> = Promise.resolve()
  /** consecutive failed discovery polls; while no relay is chosen we retry sooner than the poll interval */
  private discoveryFailures = 0
  private nextRetry = 0

  constructor (node: Libp2p, opts: RelayManagerOptions) {
    this.node = node
    this.upstream = circuitTransportInternals(node)
    this.opts = { relayCount: 2, pollIntervalMs: 60_000, checkIntervalMs: 2_000, ...opts }
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
    this.pollTimer = setInterval(() => { void this.refresh() }, this.opts.pollIntervalMs)
    this.checkTimer = setInterval(() => {
      if (this.relays.size === 0 && Date.now() >= this.nextRetry) void this.refresh()
      else void this.check()
    }, this.opts.checkIntervalMs)
    this.pollTimer.unref(); this.checkTimer.unref()
    await this.waitForReservation(opts.timeoutMs ?? 20_000)
  }

  async stop (): Promise<void> {
    this.running = false
    this.controller.abort()
    clearInterval(this.pollTimer)
    clearInterval(this.checkTimer)
    this.node.removeEventListener('connection:close', this.onConnectionClose)
  }

  /** The relays currently chosen, in preference order. */
  get chosen (): RelayInfo[] {
    return [...this.relays.values()].map((s) => s.info)
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
    const relays = relaysToDial(this.known, target, this.opts.relayCount)
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
    const state = this.relays.get(evt.detail.remotePeer.toString())
    if (state == null || !this.running) return
    // reconnect promptly, not at the next tick
    state.nextAttempt = 0
    setTimeout(() => { void this.check() }, 100).unref()
  }

  /** Polls discovery and re-chooses relays; keeps the old ones until the new ones are reserved. */
  async refresh (): Promise<void> {
    let relays: RelayInfo[]
    try {
      relays = await fetchRelays(this.opts.discoveryUrl, { signal: this.controller.signal, ...(this.opts.addressPolicy != null ? { addressPolicy: this.opts.addressPolicy } : {}) })
    } catch (err: any) {
      this.discoveryFailures++
      this.nextRetry = Date.now() + backoffDelay(this.discoveryFailures - 1, DISCOVERY_BACKOFF)
      this.opts.onEvent?.({ type: 'discovery_failed', error: err.message })
      return
    }
    // an empty list backs off like a failure, so clients do not poll every tick
    this.discoveryFailures = relays.length === 0 ? this.discoveryFailures + 1 : 0
    this.nextRetry = Date.now() + backoffDelay(this.discoveryFailures - 1, DISCOVERY_BACKOFF)
    this.known = relays
    const wanted = rankRelays(relays, this.node.peerId.toString()).slice(0, this.opts.relayCount)
    for (const info of wanted) {
      const existing = this.relays.get(info.peer_id)
      if (existing != null) { existing.info = info; continue }
      this.relays.set(info.peer_id, { info, peerId: peerIdFromString(info.peer_id), listening: false, failures: 0, nextAttempt: 0 })
    }
    this.opts.onEvent?.({ type: 'relays', relays: wanted.map((r) => r.peer_id) })
    await this.check()
    // drop relays no longer chosen only after the chosen ones hold reservations
    const wantedIds = new Set(wanted.map((r) => r.peer_id))
    for (const [id, state] of this.relays) {
      if (wantedIds.has(id)) continue
      if (wanted.some((r) => !this.hasReservation(r.peer_id))) break
      this.relays.delete(id)
      await this.node.hangUp(state.peerId).catch(() => {})
    }
  }

  private async check (): Promise<void> {
    if (!this.running) return
    await Promise.all([...this.relays.values()].map(async (state) => {
      if (this.hasReservation(state.info.peer_id)) {
        state.failures = 0
        // keep a renewed ticket presented, or the relay ends our reservation when the old one expires
        await this.ensureTicket(state.peerId).catch((err: Error) => { this.opts.onEvent?.({ type: 'reserve_failed', relay: state.info.peer_id, error: err.message }) })
        return
      }
      if (state.reserving != null || Date.now() < state.nextAttempt) return
      state.reserving = this.reserve(state).finally(() => { state.reserving = undefined })
      await state.reserving
    }))
  }

  private async reserve (state: RelayState): Promise<void> {
    const { peerId, info } = state
    try {
      await this.node.peerStore.merge(peerId, { multiaddrs: info.addrs.map((a) => multiaddr(a)) })
      const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(10_000)])
      await this.ensureTicket(peerId, signal)
      if (!state.listening) {
        // first time: the transport dials the relay, reserves and adds a listener
        const listen = this.listenQueue.catch(() => {}).then(async () => { await this.upstream.transportManager().listen([multiaddr(`/p2p/${info.peer_id}/p2p-circuit`)]) })
        this.listenQueue = listen
        await listen
        state.listening = true
      } else {
        // renew on the existing listener: it re-announces when the transport
        // reports a new 'configured' reservation for its relay
        await this.upstream.renewReservation(peerId, async () => await this.node.dial(peerId, { signal }))
      }
      state.failures = 0
      if (!this.hasReservation(info.peer_id)) await new Promise((resolve) => setTimeout(resolve, 50))
      this.opts.onEvent?.({ type: 'reserved', relay: info.peer_id, addrs: this.circuitAddresses().map(String) })
    } catch (err: any) {
      state.failures++
      // 0.5 s, 1 s, 2 s ... capped at 10 s: a restarting relay is back within seconds; jittered, so
      // the thousands of peers a relay restart drops do not all come back in the same instant
      state.nextAttempt = Date.now() + backoffDelay(state.failures - 1, RESERVE_BACKOFF)
      this.opts.onEvent?.({ type: 'reserve_failed', relay: info.peer_id, error: err.message })
    }
  }
}
