import { lpStream } from '@libp2p/utils'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { readTextCapped } from '@pos-relay/shared'

/** The relay's protocol for presenting an account ticket (see relay-image/src/auth.ts). */
export const TICKET_PROTOCOL = '/pos-relay/ticket/1.0.0'

export class TicketRejectedError extends Error {
  override name = 'TicketRejectedError'
  constructor (readonly reason: string) {
    super(`relay rejected the ticket: ${reason}`)
  }
}

interface Ticket { token: string, jti: string, issuedAt: number, expiresAt: number }

/**
 * Gets short-lived relay tickets from the discovery API with the account's
 * API key (`POST /api/p2p/tickets`), and renews them when 80 % of their
 * lifetime has passed.
 */
export class TicketClient {
  private ticket?: Ticket
  private pending?: Promise<Ticket>

  constructor (private readonly opts: { discoveryUrl: string, apiKey: string, peerId: PeerId }) {}

  /** a ticket with at least 20 % of its lifetime left */
  async current (): Promise<Ticket> {
    const t = this.ticket
    if (t != null && Date.now() < t.issuedAt + (t.expiresAt - t.issuedAt) * 0.8) return t
    this.pending ??= this.fetch().finally(() => { this.pending = undefined })
    return await this.pending
  }

  /** ms until the current ticket should be replaced */
  renewIn (): number {
    const t = this.ticket
    return t == null ? 0 : Math.max(1000, t.issuedAt + (t.expiresAt - t.issuedAt) * 0.8 - Date.now())
  }

  private async fetch (): Promise<Ticket> {
    const base = this.opts.discoveryUrl.endsWith('/') ? this.opts.discoveryUrl : this.opts.discoveryUrl + '/'
    const res = await fetch(new URL('api/p2p/tickets', base), {
      method: 'POST',
      headers: { authorization: `Bearer ${this.opts.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ peer_id: this.opts.peerId.toString() }),
      signal: AbortSignal.timeout(10_000)
    })
    // bounded: a ticket answer is a few hundred bytes, whoever answers must not make us buffer more than 1 MiB
    const text = await readTextCapped(res)
    if (!res.ok) throw new Error(`ticket request failed: ${res.status} ${text.slice(0, 200)}`)
    const body = JSON.parse(text) as { ticket: string, jti: string, expires_at: string }
    const ticket = { token: body.ticket, jti: body.jti, issuedAt: Date.now(), expiresAt: Date.parse(body.expires_at) }
    this.ticket = ticket
    return ticket
  }
}

/** Presents a ticket to a relay over an existing or new connection; throws TicketRejectedError with the relay's reason. */
export async function presentTicket (node: Libp2p, relay: PeerId, token: string, signal?: AbortSignal): Promise<void> {
  const stream = await node.dialProtocol(relay, TICKET_PROTOCOL, { signal: signal ?? AbortSignal.timeout(10_000) })
  const lp = lpStream(stream, { maxDataLength: 4096 })
  await lp.write(new TextEncoder().encode(token))
  const reply = JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray())) as { status: string, reason?: string }
  await stream.close().catch(() => {})
  if (reply.status !== 'OK') throw new TicketRejectedError(reply.reason ?? 'unknown')
}
