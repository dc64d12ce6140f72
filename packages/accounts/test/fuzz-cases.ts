import { TicketError, type TicketKey, type TicketRejection, type TicketVerifier } from '@pos-relay/accounts'
import { seededRandom } from '@pos-relay/testing'
import { b64, claims, hs256WithPublicKey, PEER_A, signRaw } from './fixtures.ts'

const REASONS = new Set<TicketRejection>(['malformed', 'bad_algorithm', 'unknown_key', 'bad_signature', 'expired', 'not_yet_valid', 'bad_claims', 'wrong_peer', 'revoked'])
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

export interface FuzzResult {
  cases: number
  accepted: number
  reasons: Partial<Record<TicketRejection, number>>
  /** inputs that made verify() throw something other than a TicketError, or accept a forgery */
  failures: { input: string, problem: string }[]
}

/** A token the harness signed with the real key (its claims decide whether it verifies). */
class Signed {
  constructor (token: string) {
    this.token = token
  }

  readonly token: string
}

const weird: unknown[] = [
  // eslint-disable-next-line @typescript-eslint/no-loss-of-precision -- deliberately out-of-range numbers are the inputs under test
  null, true, false, 0, -1, 1e400, -1e400, 1.5, Number.MAX_SAFE_INTEGER + 2, '', ' ', 'x'.repeat(300), '\u0000', '\ud800', '🙂',
  [], [1], {}, { a: 1 }, '1700000000', 'EdDSA', ['EdDSA'],
]

/**
 * Runs `count` random and mutated tokens through `verifier.verify`. Mutations start from a valid
 * ticket; some mutated claim sets are re-signed with the real key so claim validation is reached.
 */
export async function fuzzTickets (opts: { verifier: TicketVerifier, key: TicketKey, valid: string, count: number, seed: number }): Promise<FuzzResult> {
  const r = seededRandom(opts.seed)
  const int = (n: number) => Math.floor(r() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T
  const randStr = (n: number, alphabet = B64) => Array.from({ length: n }, () => alphabet[int(alphabet.length)]).join('')
  const randUnicode = (n: number) => Array.from({ length: n }, () => String.fromCharCode(int(0x3000))).join('')
  const valid = opts.valid
  const [vh, vp, vs] = valid.split('.') as [string, string, string]
  const result: FuzzResult = { cases: 0, accepted: 0, reasons: {}, failures: [] }
  const decodedEqual = (token: string) => {
    // base64url's last character carries unused bits: a mutation there can decode to the same bytes
    const parts = token.split('.')
    if (parts.length !== 3) return false
    return parts.every((p, i) => Buffer.from(p, 'base64url').equals(Buffer.from([vh, vp, vs][i] as string, 'base64url')))
  }

  const mutateString = (s: string): string => {
    const n = s.length
    switch (int(8)) {
      case 0: { const i = int(n); return s.slice(0, i) + pick([...B64]) + s.slice(i + 1) }
      case 1: { const i = int(n); return s.slice(0, i) + s.slice(i + 1 + int(4)) }
      case 2: { const i = int(n + 1); return s.slice(0, i) + randStr(1 + int(6), B64 + '.=+/ ') + s.slice(i) }
      case 3: return s.slice(0, int(n))
      case 4: return s.slice(int(n))
      case 5: { const i = int(n); const j = int(n); return s.slice(0, Math.min(i, j)) + s.slice(Math.max(i, j)) + s.slice(Math.min(i, j), Math.max(i, j)) }
      case 6: return s + s.slice(0, int(n))
      default: { const chars = [...s]; for (let k = 0; k < 1 + int(5); k++) chars[int(n)] = randStr(1); return chars.join('') }
    }
  }

  const gens: (() => Promise<unknown>)[] = [
    async () => mutateString(valid),
    async () => mutateString(mutateString(valid)),
    async () => [vh, vp, vs].map((p) => (r() < 0.3 ? mutateString(p) : p)).join('.'),
    async () => pick([`${vh}.${vp}`, `${vh}..${vs}`, `.${vp}.${vs}`, `${vp}.${vh}.${vs}`, `${vh}.${vp}.${vs}.${vs}`, `${vh}.${vh}.${vs}`, `${vs}.${vp}.${vh}`]),
    async () => randStr(int(600)),
    async () => `${randStr(int(100))}.${randStr(int(300))}.${randStr(int(100))}`,
    async () => randUnicode(int(200)),
    async () => pick(weird),
    async () => `${b64(pick(weird))}.${b64(pick(weird))}.${randStr(86)}`,
    async () => {
      // random header fields under a real signature
      const header: Record<string, unknown> = { alg: pick(['EdDSA', 'EdDSA', 'none', 'HS256', 'RS256', 'ES256', 'Ed25519', '', null, 5, ['EdDSA']]) }
      if (r() < 0.8) header.kid = pick([opts.key.kid, opts.key.kid, 'other', '', 5, null, {}, 'x'.repeat(200)])
      if (r() < 0.2) header.crit = pick([['b64'], ['exp'], 'b64', [], [5]])
      if (r() < 0.2) header.b64 = pick([false, true, 'no'])
      if (r() < 0.1) header.jwk = { kty: 'OKP', crv: 'Ed25519', x: opts.key.x }
      if (r() < 0.1) header.jku = 'http://127.0.0.1:1/jwks'
      if (r() < 0.1) header.typ = pick(['JWT', 'none', 5])
      if (header.alg !== 'EdDSA') return `${b64(header)}.${vp}.${r() < 0.5 ? vs : ''}`
      return await signRaw(opts.key, header, claims()).then((t) => new Signed(t), () => `${b64(header)}.${vp}.${vs}`)
    },
    async () => {
      // random claim values under a real signature
      const c: Record<string, unknown> = claims()
      for (const k of Object.keys(c)) if (r() < 0.3) c[k] = pick(weird)
      if (r() < 0.2) delete c[pick(Object.keys(c))]
      if (r() < 0.2) c.nbf = pick([...weird, Math.floor(Date.now() / 1000) + int(7200) - 3600])
      if (r() < 0.1) c.pad = 'x'.repeat(int(5000))
      const payload = r() < 0.1 ? pick(['[]', '"x"', '1', 'null', '{', randUnicode(20)]) : c
      return new Signed(await signRaw(opts.key, { kid: opts.key.kid }, payload))
    },
    async () => hs256WithPublicKey(pick([Buffer.from(opts.key.x, 'base64url'), opts.key.x]), { kid: opts.key.kid }, claims()),
  ]

  for (let i = 0; i < opts.count; i++) {
    const generated = await pick(gens)()
    // tokens the harness signed itself with the real key may legitimately verify
    const signedByUs = generated instanceof Signed
    const input = generated instanceof Signed ? generated.token : generated
    const peer = r() < 0.95 ? PEER_A : pick(weird)
    result.cases++
    try {
      await opts.verifier.verify(input as string, peer as string)
      result.accepted++
      const isOriginal = typeof input === 'string' && (input === valid || decodedEqual(input))
      if (peer !== PEER_A || !(isOriginal || signedByUs)) result.failures.push({ input: String(input).slice(0, 200), problem: 'accepted a forged or foreign ticket' })
    } catch (err) {
      if (!(err instanceof TicketError) || !REASONS.has(err.reason)) {
        result.failures.push({ input: String(input).slice(0, 200), problem: `threw ${(err as Error)?.name}: ${(err as Error)?.message}` })
        continue
      }
      result.reasons[err.reason] = (result.reasons[err.reason] ?? 0) + 1
    }
  }
  return result
}
