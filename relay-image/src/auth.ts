import { TicketError, type RevocationEvent, type Tier, type TicketClaims } from '@pos-relay/accounts'
import { lpStream } from '@libp2p/utils'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import type { RelayMetrics } from './metrics.js'
import type { SampledLog } from './rate-limits.js'
import { ipOf } from './connection-ip.js'
import type { Libp2p, PeerId, Stream, Connection } from '@libp2p/interface'
import type { Logger } from '@pos-relay/shared'

/** Our protocol for presenting a relay ticket before reserving or dialing. */
export const TICKET_PROTOCOL = '/pos-relay/ticket/1.0.0'
/** a compact JWS ticket is well under this; anything larger is refused unread */
export const MAX_TICKET_BYTES = 4096

export interface TicketVerifierLike {
  verify: (token: string, expectedPeer: string) => Promise<TicketClaims>
  /** false while no ticket key is known (none configured, none fetched yet): the relay is then not ready */
  hasKeys?: () => boolean
  /** fetches the ticket keys now; rejects when that fails */
  refresh?: () => Promise<void>
}

export interface RevocationsLike {
  subscribe: (handler: (evt: RevocationEvent) => void) => () => void
  isRevoked: (claims: TicketClaims) => Promise<boolean>
}

export interface TicketGateOptions {
  verifier: TicketVerifierLike
  revocations: RevocationsLike
  tiers: Record<string, Tier>
  metrics: RelayMetrics
  logger: Logger
  denials: SampledLog
  /** called when an account or ticket is revoked: end that peer's reservation and circuits */
  onRevoked: (peer: PeerId, reason: string) => void
  /**
   * Ticket presentations per minute, per peer and per source IP, on this relay
   * (default 30 and 600: many peers may share an address behind a CGNAT). A peer presents once per ticket (an hour) and after a
   * reconnect; verification costs CPU, so more is refused before verifying.
   */
  presentationsPerMinute?: { peer: number, ip: number }
}

export const DEFAULT_PRESENTATIONS_PER_MINUTE = { peer: 30, ip: 600 }

/** What the relay answers on the ticket protocol (one length-prefixed JSON message). */
export interface TicketResponse {
  status: 'OK' | 'REJECTED'
  reason?: string
  account?: string
  tier?: string
  expires_at?: string
}

/** The payload of the relay's one reply frame (docs/protocol.md; the vectors are generated from this). */
export function ticketReplyPayload (response: TicketResponse): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(response))
}

interface Presented { claims: TicketClaims, peer: PeerId }

/**
 * Holds the verified ticket of each connected peer. A peer presents its ticket
 * on TICKET_PROTOCOL; the relay verifies it offline (Ed25519 public keys),
 * checks revocation and remembers the claims until the ticket expires or the
 * peer disconnects. Reservations and circuits then look the claims up.
 */
export class TicketGate {
  private readonly presented = new Map<string, Presented>()
  private readonly opts: TicketGateOptions
  private unsubscribe?: () => void

  private readonly perPeer: RateLimiterMemory
  private readonly perIp: RateLimiterMemory

  constructor (opts: TicketGateOptions) {
    this.opts = opts
    const limits = opts.presentationsPerMinute ?? DEFAULT_PRESENTATIONS_PER_MINUTE
    this.perPeer = new RateLimiterMemory({ points: limits.peer, duration: 60 })
    this.perIp = new RateLimiterMemory({ points: limits.ip, duration: 60 })
  }

  /** one presentation by `peer` from `ip`: false when over either limit (nothing is verified then) */
  private async admitPresentation (peer: string, ip: string | undefined): Promise<boolean> {
    try {
      await this.perPeer.consume(peer)
      if (ip != null) await this.perIp.consume(ip)
      return true
    } catch {
      return false
    }
  }

  async start (node: Libp2p): Promise<void> {
    await node.handle(TICKET_PROTOCOL, async (stream, connection) => { await this.onTicket(stream, connection) }, {
      runOnLimitedConnection: false,
      maxInboundStreams: 2
    })
    node.addEventListener('peer:disconnect', (evt) => { this.presented.delete(evt.detail.toString()) })
    this.unsubscribe = this.opts.revocations.subscribe((evt) => { this.onRevocation(evt) })
  }

  stop (): void {
    this.unsubscribe?.()
    this.presented.clear()
  }

  /** The valid, unexpired claims a peer presented, if any. */
  claimsFor (peer: PeerId): TicketClaims | undefined {
    const entry = this.presented.get(peer.toString())
    if (entry == null) return undefined
    if (entry.claims.exp * 1000 <= Date.now()) {
      this.presented.delete(peer.toString())
      return undefined
    }
    return entry.claims
  }

  tierOf (claims: TicketClaims): Tier | undefined {
    return this.opts.tiers[claims.tier]
  }

  /** peers currently holding a ticket of `account` */
  peersOf (account: string): PeerId[] {
    return [...this.presented.values()].filter((p) => p.claims.account === account).map((p) => p.peer)
  }

  private async onTicket (stream: Stream, connection: Connection): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_TICKET_BYTES })
    const reply = async (response: TicketResponse): Promise<void> => {
      await lp.write(ticketReplyPayload(response), { signal: AbortSignal.timeout(5000) })
      await stream.close().catch(() => {})
    }
    const peer = connection.remotePeer
    if (!(await this.admitPresentation(peer.toString(), ipOf(connection)))) {
      this.opts.metrics.ticketsTotal.inc({ result: 'rate_limited' })
      this.opts.denials.note('ticket_rate_limited', { reason: 'rate_limited' })
      await reply({ status: 'REJECTED', reason: 'rate_limited' }).catch(() => { stream.abort(new Error('ticket rejected')) })
      return
    }
    let claims: TicketClaims
    try {
      const message = await lp.read({ signal: AbortSignal.timeout(10_000) })
      const token = new TextDecoder('utf-8', { fatal: true }).decode(message.subarray())
      claims = await this.opts.verifier.verify(token, peer.toString())
      if (await this.opts.revocations.isRevoked(claims)) throw new TicketError('revoked')
      if (this.tierOf(claims) == null) throw new TicketError('bad_claims', `unknown tier ${claims.tier}`)
    } catch (err: any) {
      const reason = err instanceof TicketError ? err.reason : 'malformed'
      this.opts.metrics.ticketsTotal.inc({ result: reason })
      this.opts.denials.note(`ticket_${reason}`, { reason })
      await reply({ status: 'REJECTED', reason }).catch(() => { stream.abort(new Error('ticket rejected')) })
      return
    }
    this.presented.set(peer.toString(), { claims, peer })
    this.opts.metrics.ticketsTotal.inc({ result: 'ok' })
    await reply({ status: 'OK', account: claims.account, tier: claims.tier, expires_at: new Date(claims.exp * 1000).toISOString() }).catch(() => {})
  }

  private onRevocation (evt: RevocationEvent): void {
    let applied = false
    for (const [key, entry] of this.presented) {
      const hit = evt.kind === 'account' ? entry.claims.account === evt.id : entry.claims.jti === evt.id
      if (!hit) continue
      applied = true
      this.presented.delete(key)
      this.opts.logger.info({ event: 'ticket_revoked', kind: evt.kind }, 'revoked: ending reservation and circuits')
      this.opts.onRevoked(entry.peer, `${evt.kind} revoked`)
    }
    this.opts.metrics.revocationsTotal.inc({ kind: evt.kind, result: applied ? 'applied' : 'not_held' })
  }
}
