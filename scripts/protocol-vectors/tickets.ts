// docs/protocol-vectors/tickets.json: ticket presentation (docs/protocol.md), with replies made by the
// relay's own encoder and ticket verifier and outcomes by the SDK's exchange over an in-memory stream.
import { createPrivateKey, createSecretKey, type KeyObject } from 'node:crypto'
import { streamPair, lpStream } from '@libp2p/utils'
import { SignJWT } from 'jose'
import { TicketError, TicketVerifier } from '@pos-relay/accounts'
import { exchangeTicket, TicketProtocolError } from '@pos-relay/client'
import { ticketReplyPayload, type TicketResponse } from '@pos-relay/relay'
import { hex, peerId, sha256 } from './common.ts'

const NOW = Date.parse('2026-01-01T00:00:00.000Z') / 1000

/** A fixed Ed25519 key (PKCS#8 from a 32-byte seed), so that signatures, and so the vectors, are stable. */
function ed25519 (label: string): KeyObject {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), sha256(`pos-relay protocol vectors: ${label}`)])
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
}

interface TicketSpec { account?: string, tier?: string, sub?: string, iat?: number, exp?: number, jti?: string, kid?: string, key?: KeyObject, alg?: string }

async function signTicket (spec: TicketSpec, signing: KeyObject): Promise<string> {
  const claims: Record<string, unknown> = {}
  if (spec.account !== '') claims.account = spec.account ?? 'acct_vectors'
  if (spec.tier !== '') claims.tier = spec.tier ?? 'free'
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: spec.alg ?? 'EdDSA', kid: spec.kid ?? 'vectors-1', typ: 'JWT' })
    .setSubject(spec.sub ?? '')
    .setIssuedAt(spec.iat ?? NOW - 60)
    .setExpirationTime(spec.exp ?? NOW + 540)
    .setJti(spec.jti ?? 'vectors-jti-1')
    .sign(spec.key ?? signing)
}

/** Runs the SDK's exchange over an in-memory stream; the other end answers `reply` raw. */
async function exchange (token: string, reply: Uint8Array): Promise<{ request: Uint8Array, outcome: 'accepted' | 'rejected' | 'malformed', reason: string | null }> {
  const [client, relay] = await streamPair()
  const received: Uint8Array[] = []
  const relaySide = (async () => {
    // read exactly the one frame the client writes, then answer the raw bytes and close
    const lp = lpStream(relay, { maxDataLength: 4096 })
    const frame = (await lp.read()).subarray()
    received.push(frame)
    const unwrapped = lp.unwrap()
    if (reply.length > 0) unwrapped.send(reply)
    await unwrapped.close()
  })()
  let result: { outcome: 'accepted' | 'rejected' | 'malformed', reason: string | null }
  try {
    const r = await exchangeTicket(client, token, AbortSignal.timeout(5000))
    result = r.outcome === 'accepted' ? { outcome: 'accepted', reason: null } : { outcome: 'rejected', reason: r.reason }
  } catch (err) {
    if (!(err instanceof TicketProtocolError)) throw err
    result = { outcome: 'malformed', reason: null }
  }
  await relaySide
  await client.close().catch(() => {})
  const payload = received[0] ?? new Uint8Array()
  return { request: Buffer.concat([varint(payload.length), payload]), ...result }
}

function varint (n: number): Buffer {
  const out: number[] = []
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0))
    n >>>= 7
  } while (n > 0)
  return Buffer.from(out)
}

const frame = (payload: Uint8Array | string): Uint8Array => {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload)
  return Buffer.concat([varint(bytes.length), bytes])
}

export async function ticketVectors (): Promise<unknown> {
  const signing = ed25519('ticket key 1')
  const unknown = ed25519('ticket key never published')
  const jwk = { ...signing.export({ format: 'jwk' }), kid: 'vectors-1', alg: 'EdDSA' }
  delete (jwk as { d?: string }).d
  const verifier = new TicketVerifier({ jwks: { keys: [jwk] }, now: () => new Date(NOW * 1000), clockToleranceSeconds: 30 })
  const peer = await peerId('ticket peer')
  const other = await peerId('another peer')

  const cases: unknown[] = []
  /** A ticket case with the relay's real verdict: the verifier decides, the relay's encoder writes the reply. */
  const real = async (name: string, token: string, intended: string, gate?: 'revoked' | 'rate_limited'): Promise<void> => {
    let response: TicketResponse
    if (gate != null) {
      response = { status: 'REJECTED', reason: gate }
    } else {
      try {
        const c = await verifier.verify(token, peer)
        response = { status: 'OK', account: c.account, tier: c.tier, expires_at: new Date(c.exp * 1000).toISOString() }
      } catch (err) {
        if (!(err instanceof TicketError)) throw err
        response = { status: 'REJECTED', reason: err.reason }
      }
    }
    const verdict = response.status === 'OK' ? 'OK' : response.reason
    if (verdict !== intended) throw new Error(`vector "${name}": the relay answers ${verdict}, the case was written for ${intended}`)
    const r = await exchange(token, frame(ticketReplyPayload(response)))
    cases.push({ name, token, request_hex: hex(r.request), reply_hex: hex(frame(ticketReplyPayload(response))), outcome: r.outcome, reason: r.reason })
  }

  const valid = await signTicket({ sub: peer }, signing)
  await real('a valid ticket is accepted', valid, 'OK')
  await real('a valid ticket with a long account id (two-byte length prefix on the reply)', await signTicket({ sub: peer, account: 'acct_' + 'x'.repeat(120) }, signing), 'OK')
  await real('malformed: not a compact JWS', 'not-a-ticket', 'malformed')
  await real('malformed: an empty token (zero-length frame)', '', 'malformed')
  await real('malformed: a truncated signature', valid.slice(0, -2), 'malformed')
  await real('bad_algorithm: alg HS256', await signTicket({ sub: peer, alg: 'HS256', key: createSecretKey(sha256('hmac')) as unknown as KeyObject }, signing), 'bad_algorithm')
  await real('unknown_key: signed by a key the relay does not know', await signTicket({ sub: peer, kid: 'vectors-unknown', key: unknown }, signing), 'unknown_key')
  const sig = valid.slice(valid.lastIndexOf('.') + 1)
  const flipped = sig.slice(0, 10) + (sig[10] === 'A' ? 'B' : 'A') + sig.slice(11)
  await real('bad_signature: one signature character changed', valid.slice(0, valid.lastIndexOf('.') + 1) + flipped, 'bad_signature')
  await real('expired: exp an hour ago', await signTicket({ sub: peer, iat: NOW - 4000, exp: NOW - 3600 }, signing), 'expired')
  await real('not_yet_valid: issued an hour from now', await signTicket({ sub: peer, iat: NOW + 3600, exp: NOW + 3900 }, signing), 'not_yet_valid')
  await real('bad_claims: lifetime over one hour', await signTicket({ sub: peer, iat: NOW - 60, exp: NOW + 7200 }, signing), 'bad_claims')
  await real('bad_claims: no account claim', await signTicket({ sub: peer, account: '' }, signing), 'bad_claims')
  await real('wrong_peer: the ticket is bound to another peer', await signTicket({ sub: other }, signing), 'wrong_peer')
  await real('revoked: the ticket or its account was revoked (decided by the relay after verifying)', valid, 'revoked', 'revoked')
  await real('rate_limited: too many presentations (decided before verifying)', valid, 'rate_limited', 'rate_limited')

  /** Replies our relay never writes but a client must read the same way: hand-written. */
  const synthetic = async (name: string, reply: Uint8Array, withRequest: boolean): Promise<void> => {
    const r = await exchange(valid, reply)
    cases.push(withRequest
      ? { name, token: valid, request_hex: hex(r.request), reply_hex: hex(reply), outcome: r.outcome, reason: r.reason }
      : { name, reply_hex: hex(reply), outcome: r.outcome })
  }
  await synthetic('synthetic: REJECTED with a reason this client does not know is a rejection with that reason', frame('{"status":"REJECTED","reason":"quota_exceeded"}'), true)
  await synthetic('synthetic: REJECTED without a reason is reason "unknown"', frame('{"status":"REJECTED"}'), true)
  await synthetic('synthetic: REJECTED with a non-string reason is reason "unknown"', frame('{"status":"REJECTED","reason":42}'), true)
  await synthetic('synthetic: OK with nothing else is accepted', frame('{"status":"OK"}'), true)
  await synthetic('synthetic: OK with unknown fields is accepted', frame('{"status":"OK","account":"a","tier":"free","expires_at":"2026-01-01T00:09:00.000Z","region":"eu"}'), true)
  const padTo = (size: number): string => {
    const head = '{"status":"OK","pad":"'
    return head + 'x'.repeat(size - head.length - 2) + '"}'
  }
  await synthetic('synthetic: a reply of exactly 4096 bytes is accepted', frame(padTo(4096)), true)

  const malformed: Array<[string, Uint8Array]> = [
    ['no reply at all (the stream ends)', new Uint8Array()],
    ['a frame of 4097 bytes (over the 4096 bytes limit)', frame(padTo(4097))],
    ['truncated: the length says 64 bytes, 15 follow', Buffer.concat([varint(64), Buffer.from('{"status":"OK"}')])],
    ['only a length prefix', varint(15)],
    ['a varint that never ends', Buffer.alloc(10, 0xff)],
    ['a zero-length frame', frame('')],
    ['not JSON', frame('OK')],
    ['a JSON string', frame('"OK"')],
    ['a JSON array', frame('["OK"]')],
    ['JSON null', frame('null')],
    ['status missing', frame('{"reason":"expired"}')],
    ['status in lower case', frame('{"status":"ok"}')],
    ['status not a string', frame('{"status":true}')],
    ['invalid UTF-8 inside the JSON', frame(Buffer.concat([Buffer.from('{"status":"OK","account":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]))],
    ['a byte order mark before the JSON', frame('\ufeff{"status":"OK"}')]
  ]
  for (const [name, reply] of malformed) await synthetic(`malformed reply: ${name}`, reply, false)

  return {
    description: 'The /pos-relay/ticket/1.0.0 exchange. The client writes the token (UTF-8) as one frame: unsigned varint length, then the bytes; ' +
      'the relay answers one frame whose payload is a UTF-8 JSON object {status: "OK" | "REJECTED", reason?, account?, tier?, expires_at?}, at most 4096 bytes. ' +
      '`token` (informative) is the token the request carries. Cases not named "synthetic" or "malformed reply" carry the reply relay-image writes for that token ' +
      '(its TicketVerifier at 2026-01-01T00:00:00Z with key "vectors-1", the presenting peer being ' + peer + '; revoked and rate_limited are decided by the relay\'s gate). ' +
      'Generated by scripts/protocol-vectors.ts from packages/client exchangeTicket and relay-image ticketReplyPayload.',
    cases
  }
}
