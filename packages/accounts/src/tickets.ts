import { randomUUID } from 'node:crypto'
import {
  calculateJwkThumbprint,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type JWK,
} from 'jose'
import { z } from 'zod'
import { readTextCapped } from '@pos-relay/shared'
import { TicketError, type TicketClaims, type TicketRejection } from './contract.js'
import type { MinimalLogger } from './types.js'

export type { JWK } from 'jose'

/** Longest ticket lifetime (exp - iat) a verifier accepts and an issuer may be configured with. */
export const MAX_TICKET_TTL_SECONDS = 3600
export const DEFAULT_TICKET_TTL_SECONDS = 600
/** Tokens longer than this are rejected before any parsing. */
export const MAX_TICKET_LENGTH = 4096
export const TICKET_ALG = 'EdDSA'

/** A private Ed25519 ticket-signing key as a JWK (what `pos-relay keys generate` writes). */
export interface TicketKey extends JWK {
  kty: 'OKP'
  crv: 'Ed25519'
  x: string
  d: string
  kid: string
  alg: 'EdDSA'
}

/** The public part of a ticket key, as published in the JWKS. */
export interface PublicTicketKey extends JWK {
  kty: 'OKP'
  crv: 'Ed25519'
  x: string
  kid: string
  alg: 'EdDSA'
  use: 'sig'
}

const b64url32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes, base64url')
const kidSchema = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'may only contain letters, digits and . _ : -')

const ticketKeySchema = z.object({
  kty: z.literal('OKP'),
  crv: z.literal('Ed25519'),
  x: b64url32,
  d: b64url32,
  kid: kidSchema,
  alg: z.literal('EdDSA').optional(),
})

const publicKeySchema = z.object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: b64url32, kid: kidSchema })

/** Generates an Ed25519 signing key; `kid` is its RFC 7638 thumbprint. */
export async function generateTicketKey (): Promise<TicketKey> {
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
  const jwk = await exportJWK(privateKey)
  const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x as string })
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x as string, d: jwk.d as string, kid, alg: 'EdDSA' }
}

/**
 * Validates a ticket keys file (a JSON array of private JWKs, first = signing key). Throws an
 * Error that names the broken field but never echoes key material.
 */
export function parseTicketKeys (json: unknown): TicketKey[] {
  const parsed = z.array(ticketKeySchema).min(1, 'needs at least one key').safeParse(json)
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new Error(`invalid ticket keys: ${where}`)
  }
  const kids = new Set<string>()
  return parsed.data.map((k) => {
    if (kids.has(k.kid)) throw new Error(`invalid ticket keys: kid ${k.kid} appears twice`)
    kids.add(k.kid)
    return { kty: 'OKP', crv: 'Ed25519', x: k.x, d: k.d, kid: k.kid, alg: 'EdDSA' }
  })
}

/** The public JWK of a ticket key (no `d`). */
export function publicTicketKey (key: Pick<TicketKey, 'x' | 'kid'>): PublicTicketKey {
  return { kty: 'OKP', crv: 'Ed25519', x: key.x, kid: key.kid, alg: 'EdDSA', use: 'sig' }
}

/** `${apiUrl}/api/p2p/ticket-keys`: where discovery publishes the JWKS. */
export function ticketKeysUrl (apiUrl: string): string {
  return `${apiUrl.replace(/\/+$/, '')}/api/p2p/ticket-keys`
}

export interface TicketIssuerOptions {
  /** the first key signs; all are published (rotation: prepend a new key, retire the old one after max TTL) */
  keys: TicketKey[]
  /** default 600, at most 3600 */
  ttlSeconds?: number
  /** clock, for tests */
  now?: () => Date
}

export interface IssuedTicket {
  ticket: string
  expires_at: string
  jti: string
}

const epoch = (d: Date) => Math.floor(d.getTime() / 1000)

/** Signs relay tickets: compact JWS (JWT), alg EdDSA (Ed25519), header kid. */
export class TicketIssuer {
  readonly ttlSeconds: number
  readonly kid: string
  readonly #signingKey: CryptoKey
  readonly #jwks: { keys: PublicTicketKey[] }
  readonly #now: () => Date

  private constructor (signingKey: CryptoKey, keys: TicketKey[], ttlSeconds: number, now: () => Date) {
    this.#signingKey = signingKey
    this.kid = (keys[0] as TicketKey).kid
    this.ttlSeconds = ttlSeconds
    this.#jwks = { keys: keys.map(publicTicketKey) }
    this.#now = now
  }

  static async create (opts: TicketIssuerOptions): Promise<TicketIssuer> {
    const keys = parseTicketKeys(opts.keys)
    const ttl = opts.ttlSeconds ?? DEFAULT_TICKET_TTL_SECONDS
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TICKET_TTL_SECONDS) {
      throw new RangeError(`ticket ttlSeconds must be an integer from 1 to ${MAX_TICKET_TTL_SECONDS}, got ${ttl}`)
    }
    const first = keys[0] as TicketKey
    const mismatch = () => new Error(`invalid ticket keys: the private part of key ${first.kid} does not match its public part x`)
    let signingKey: CryptoKey
    try {
      signingKey = (await importJWK(first, TICKET_ALG)) as CryptoKey
    } catch {
      throw mismatch() // WebCrypto refuses a JWK whose d and x disagree
    }
    // Self-test: a key whose d does not belong to its x would sign tickets nobody can verify.
    const probe = await new SignJWT({}).setProtectedHeader({ alg: TICKET_ALG }).sign(signingKey)
    try {
      await jwtVerify(probe, (await importJWK(publicTicketKey(first), TICKET_ALG)) as CryptoKey, { algorithms: [TICKET_ALG] })
    } catch {
      throw mismatch()
    }
    return new TicketIssuer(signingKey, keys, ttl, opts.now ?? (() => new Date()))
  }

  async issue (input: { account: string, tier: string, peer: string }): Promise<IssuedTicket> {
    for (const field of ['account', 'tier', 'peer'] as const) {
      const v = input?.[field]
      if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw new TypeError(`ticket ${field} must be a non-empty string`)
    }
    const iat = epoch(this.#now())
    const exp = iat + this.ttlSeconds
    const jti = randomUUID()
    const ticket = await new SignJWT({ account: input.account, tier: input.tier })
      .setProtectedHeader({ alg: TICKET_ALG, kid: this.kid, typ: 'JWT' })
      .setSubject(input.peer)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(this.#signingKey)
    return { ticket, expires_at: new Date(exp * 1000).toISOString(), jti }
  }

  /** Public keys of every configured key (JWKS), for GET /api/p2p/ticket-keys. */
  jwks (): { keys: PublicTicketKey[] } {
    return structuredClone(this.#jwks)
  }
}

export interface TicketVerifierOptions {
  /** keys configured offline (public JWKs; private parts are ignored) */
  jwks?: { keys: JWK[] }
  /** a JWKS URL, normally `ticketKeysUrl(discoveryUrl)`; fetched, cached and refreshed */
  jwksUrl?: string
  /** how often the JWKS is refetched in the background; default 300 */
  refreshSeconds?: number
  /** accepted clock skew for exp / nbf / iat; default 30 */
  clockToleranceSeconds?: number
  /** lower bound between two fetches (an unknown kid triggers at most one); default 5 */
  minRefreshIntervalSeconds?: number
  /** default 5000 */
  fetchTimeoutMs?: number
  /** clock, for tests */
  now?: () => Date
  logger?: MinimalLogger
}

const claimsSchema = z.object({
  account: z.string().min(1).max(256),
  tier: z.string().min(1).max(256),
  sub: z.string().min(1).max(256),
  iat: z.number().int().nonnegative(),
  exp: z.number().int().positive(),
  jti: z.string().min(1).max(256),
})

// header.payload.signature; the signature may be empty here so that alg "none" is reported as bad_algorithm
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

function fromJose (err: unknown): TicketError {
  const e = err as { code?: unknown, claim?: unknown, reason?: unknown, message?: unknown }
  const msg = typeof e?.message === 'string' ? e.message : 'invalid ticket'
  const reason: TicketRejection = (() => {
    switch (e?.code) {
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED': return 'bad_signature'
      case 'ERR_JWT_EXPIRED': return 'expired'
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED': return e.claim === 'nbf' && e.reason === 'check_failed' ? 'not_yet_valid' : 'bad_claims'
      case 'ERR_JOSE_ALG_NOT_ALLOWED': return 'bad_algorithm'
      default: return 'malformed'
    }
  })()
  return new TicketError(reason, msg)
}

/**
 * Verifies relay tickets offline. `verify` only ever throws TicketError, whatever the input.
 * Keys: the configured `jwks`, plus the set fetched from `jwksUrl` (kept when a refresh fails, so
 * a discovery outage does not stop verification).
 */
export class TicketVerifier {
  readonly #opts: TicketVerifierOptions
  readonly #static: PublicTicketKey[]
  #staticKeys: Promise<Map<string, CryptoKey>> | undefined
  #fetched = new Map<string, CryptoKey>()
  #lastAttempt = -Infinity
  #lastSuccess = -Infinity
  #inflight: Promise<void> | undefined
  readonly #tolerance: number

  constructor (opts: TicketVerifierOptions) {
    if (opts.jwks === undefined && opts.jwksUrl === undefined) throw new TypeError('TicketVerifier needs jwks or jwksUrl')
    if (opts.jwksUrl !== undefined && !URL.canParse(opts.jwksUrl)) new URL(opts.jwksUrl) // eslint-disable-line no-new -- throws the URL parser's own error for a bad URL
    this.#opts = opts
    this.#tolerance = opts.clockToleranceSeconds ?? 30
    const staticKeys = opts.jwks?.keys ?? []
    if (!Array.isArray(staticKeys)) throw new TypeError('jwks.keys must be an array')
    this.#static = staticKeys.map((k, i) => {
      const parsed = publicKeySchema.safeParse(k)
      if (!parsed.success) throw new TypeError(`jwks.keys.${i} is not an Ed25519 public JWK with a kid`)
      return publicTicketKey(parsed.data)
    })
  }

  /**
   * Whether any ticket can verify: a key was configured, or a fetch of the
   * JWKS succeeded with at least one usable key. A relay is not ready before
   * this (it would refuse every ticket, so every peer).
   */
  hasKeys (): boolean {
    return this.#static.length > 0 || this.#fetched.size > 0
  }

  /** Fetches the JWKS now (no-op without jwksUrl). Rejects when the fetch fails; keys already known stay. */
  async refresh (): Promise<void> {
    const url = this.#opts.jwksUrl
    if (url === undefined) return
    if (this.#inflight) return await this.#inflight
    this.#lastAttempt = performance.now()
    const attempt = (async () => {
      try {
        const res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.#opts.fetchTimeoutMs ?? 5000) })
        if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`)
        // capped while reading: a key set larger than 256 KiB is refused before it is buffered
        const text = await readTextCapped(res, 256 * 1024)
        const body = JSON.parse(text) as { keys?: unknown }
        if (!Array.isArray(body?.keys)) throw new Error('not a JSON Web Key Set')
        const next = new Map<string, CryptoKey>()
        for (const k of body.keys) {
          const parsed = publicKeySchema.safeParse(k)
          if (!parsed.success) continue // not an Ed25519 key: never usable for tickets
          next.set(parsed.data.kid, (await importJWK(publicTicketKey(parsed.data), TICKET_ALG)) as CryptoKey)
        }
        this.#fetched = next
        this.#lastSuccess = performance.now()
        this.#opts.logger?.debug({ keys: next.size }, 'ticket keys refreshed')
      } catch (err) {
        this.#opts.logger?.warn({ err: (err as Error).message }, 'ticket key refresh failed; keeping the known keys')
        throw err
      }
    })()
    this.#inflight = attempt
    attempt.then(
      () => { if (this.#inflight === attempt) this.#inflight = undefined },
      () => { if (this.#inflight === attempt) this.#inflight = undefined }
    )
    return await attempt
  }

  async #staticKeyMap (): Promise<Map<string, CryptoKey>> {
    this.#staticKeys ??= (async () => {
      const m = new Map<string, CryptoKey>()
      for (const k of this.#static) m.set(k.kid, (await importJWK(k, TICKET_ALG)) as CryptoKey)
      return m
    })()
    return await this.#staticKeys
  }

  async #key (kid: string): Promise<CryptoKey | undefined> {
    const fromStatic = (await this.#staticKeyMap()).get(kid)
    if (fromStatic) return fromStatic
    if (this.#opts.jwksUrl === undefined) return undefined
    const t = performance.now()
    const stale = t - this.#lastSuccess > (this.#opts.refreshSeconds ?? 300) * 1000
    const mayFetch = t - this.#lastAttempt >= (this.#opts.minRefreshIntervalSeconds ?? 5) * 1000
    let key = this.#fetched.get(kid)
    if (key) {
      if (stale && mayFetch) this.refresh().catch(() => {}) // background; current keys stay valid
      return key
    }
    // Unknown kid (or nothing fetched yet): one bounded refresh, shared by concurrent callers.
    if (mayFetch || this.#inflight) {
      await this.refresh().catch(() => {})
      key = this.#fetched.get(kid)
    }
    return key
  }

  async #verify (token: unknown, expectedPeer: unknown): Promise<TicketClaims> {
    if (typeof token !== 'string' || token.length === 0) throw new TicketError('malformed', 'ticket is not a string')
    if (token.length > MAX_TICKET_LENGTH) throw new TicketError('malformed', `ticket is longer than ${MAX_TICKET_LENGTH} characters`)
    if (!COMPACT_JWS.test(token)) throw new TicketError('malformed', 'ticket is not a compact JWS')
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(token)
    } catch {
      throw new TicketError('malformed', 'ticket header is not base64url JSON')
    }
    if (header.alg !== TICKET_ALG) throw new TicketError('bad_algorithm', `ticket alg ${JSON.stringify(header.alg)?.slice(0, 32)} is not ${TICKET_ALG}`)
    // An Ed25519 signature is 64 bytes: 86 base64url characters. Anything else is truncated or padded.
    if (token.length - token.lastIndexOf('.') - 1 !== 86) throw new TicketError('malformed', 'ticket signature is not 64 bytes')
    const kid = header.kid
    if (typeof kid !== 'string' || kid.length === 0 || kid.length > 128) throw new TicketError('unknown_key', 'ticket has no usable kid')
    const key = await this.#key(kid)
    if (!key) throw new TicketError('unknown_key', 'ticket was signed by an unknown key')
    const now = this.#opts.now?.() ?? new Date()
    let payload: unknown
    try {
      ;({ payload } = await jwtVerify(token, key, {
        algorithms: [TICKET_ALG],
        clockTolerance: this.#tolerance,
        currentDate: now,
        requiredClaims: ['account', 'tier', 'sub', 'iat', 'exp', 'jti'],
      }))
    } catch (err) {
      throw fromJose(err)
    }
    const claims = claimsSchema.safeParse(payload)
    if (!claims.success) throw new TicketError('bad_claims', `ticket claims: ${claims.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
    const c = claims.data
    if (c.exp <= c.iat || c.exp - c.iat > MAX_TICKET_TTL_SECONDS) throw new TicketError('bad_claims', `ticket lifetime must be 1-${MAX_TICKET_TTL_SECONDS} s`)
    if (c.iat > epoch(now) + this.#tolerance) throw new TicketError('not_yet_valid', 'ticket was issued in the future')
    if (typeof expectedPeer !== 'string' || c.sub !== expectedPeer) throw new TicketError('wrong_peer', 'ticket belongs to another peer')
    return { account: c.account, tier: c.tier, sub: c.sub, iat: c.iat, exp: c.exp, jti: c.jti }
  }

  /** Checks signature, algorithm, key, lifetime and peer binding. Throws only TicketError. */
  async verify (token: string, expectedPeer: string): Promise<TicketClaims> {
    try {
      return await this.#verify(token, expectedPeer)
    } catch (err) {
      if (err instanceof TicketError) throw err
      throw new TicketError('malformed', 'ticket could not be parsed')
    }
  }
}
