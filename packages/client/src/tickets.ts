import { lpStream } from '@libp2p/utils'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
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

/** The relay's reply could not be read as one (truncated, over 4096 bytes, not UTF-8 JSON, unknown status). */
export class TicketProtocolError extends Error {
  override name = 'TicketProtocolError'
}

/** Largest frame either side sends or reads on TICKET_PROTOCOL (relay-image's MAX_TICKET_BYTES). */
export const MAX_TICKET_FRAME_BYTES = 4096

/** What a relay answered to a ticket: accepted (with what it granted) or rejected with its reason. */
export type TicketReply =
  | { outcome: 'accepted', account?: string, tier?: string, expiresAt?: string }
  | { outcome: 'rejected', reason: string }

/**
 * Reads the payload of the relay's reply frame: UTF-8 JSON object whose `status` is "OK" or
 * "REJECTED". A rejection without a string `reason` is reported as reason "unknown". Anything
 * else is a protocol error, not a rejection.
 */
export function parseTicketReply (payload: Uint8Array): TicketReply {
  let reply: unknown
  try {
    // ignoreBOM keeps a BOM in the text, so JSON.parse refuses it as every other JSON parser does
    reply = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(payload))
  } catch {
    throw new TicketProtocolError('ticket reply is not UTF-8 JSON')
  }
  if (reply == null || typeof reply !== 'object' || Array.isArray(reply)) throw new TicketProtocolError('ticket reply is not a JSON object')
  const { status, reason, account, tier, expires_at: expiresAt } = reply as Record<string, unknown>
  if (status === 'REJECTED') return { outcome: 'rejected', reason: typeof reason === 'string' && reason.length > 0 ? reason : 'unknown' }
  if (status !== 'OK') throw new TicketProtocolError(`ticket reply has status ${JSON.stringify(status)?.slice(0, 40)}, not "OK" or "REJECTED"`)
  return {
    outcome: 'accepted',
    ...(typeof account === 'string' ? { account } : {}),
    ...(typeof tier === 'string' ? { tier } : {}),
    ...(typeof expiresAt === 'string' ? { expiresAt } : {})
  }
}

/**
 * One ticket exchange on an open TICKET_PROTOCOL stream: writes the token as one length-prefixed
 * (unsigned varint) frame, reads one such frame back. Throws TicketProtocolError when the reply
 * is not a valid frame; returns rejections (it does not throw them).
 */
export async function exchangeTicket (stream: Stream, token: string, signal?: AbortSignal): Promise<TicketReply> {
  const lp = lpStream(stream, { maxDataLength: MAX_TICKET_FRAME_BYTES })
  const opts = { signal: signal ?? AbortSignal.timeout(10_000) }
  await lp.write(new TextEncoder().encode(token), opts)
  let payload: Uint8Array
  try {
    payload = (await lp.read(opts)).subarray()
  } catch (err: any) {
    if (opts.signal.aborted) throw err
    throw new TicketProtocolError(`ticket reply is not one frame of at most ${MAX_TICKET_FRAME_BYTES} bytes: ${err.message}`)
  }
  return parseTicketReply(payload)
}

/**
 * Presents a ticket to a relay over an existing or new connection; throws TicketRejectedError with
 * the relay's reason, or TicketProtocolError when the relay's reply is malformed.
 */
export async function presentTicket (node: Libp2p, relay: PeerId, token: string, signal?: AbortSignal): Promise<TicketReply & { outcome: 'accepted' }> {
  const stream = await node.dialProtocol(relay, TICKET_PROTOCOL, { signal: signal ?? AbortSignal.timeout(10_000) })
  try {
    const reply = await exchangeTicket(stream, token, signal)
    if (reply.outcome === 'rejected') throw new TicketRejectedError(reply.reason)
    return reply
  } finally {
    await stream.close().catch(() => {})
  }
}
