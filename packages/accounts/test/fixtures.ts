import { createHmac } from 'node:crypto'
import { CompactSign, importJWK, type CryptoKey, type JWK } from 'jose'
import type { TicketKey } from '@pos-relay/accounts'

// Real Ed25519 PeerIds (base58btc)
export const PEER_A = '12D3KooWGTT9QsbssEwn88dneQpv7Agw8MfFvS9jvdZ3V9GrqHNh'
export const PEER_B = '12D3KooWAVjAAKKvSEKMrYNrkBmfwTaWLMtKJ8UyaQrZPNH9udNS'

export const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

/** header.payload with any JSON (or raw string) in each part, unsigned. */
export function signingInput (header: unknown, payload: unknown): string {
  return `${b64(header)}.${b64(payload)}`
}

/** A JWS over arbitrary header/payload, signed with the real Ed25519 key (to reach claim validation). */
export async function signRaw (key: TicketKey | CryptoKey, header: Record<string, unknown>, payload: unknown): Promise<string> {
  const k = 'kty' in key ? ((await importJWK(key as JWK, 'EdDSA')) as CryptoKey) : key
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(JSON.stringify(payload))
  return await new CompactSign(bytes).setProtectedHeader({ alg: 'EdDSA', ...header } as { alg: string }).sign(k)
}

/** alg HS256 "signed" with the relay's PUBLIC key as the HMAC secret (the classic confusion attack). */
export function hs256WithPublicKey (secret: Buffer | string, header: Record<string, unknown>, payload: unknown): string {
  const input = signingInput({ alg: 'HS256', ...header }, payload)
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

export function claims (over: Record<string, unknown> = {}, now = Math.floor(Date.now() / 1000)): Record<string, unknown> {
  return { account: 'acc_0123456789abcdef', tier: 'free', sub: PEER_A, iat: now, exp: now + 600, jti: 'f1b1f3b8-7a43-4c1e-9a5e-1d2b0d1c2e3f', ...over }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
