import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Component } from '@multiformats/multiaddr'
import { STATUS_CODES } from 'node:http'
import { z } from 'zod'
import { MAX_RELAY_ADDRS, MAX_SIGNATURE_SKEW_MS, REGISTRATION_SIGNATURE_DOMAIN, relayAddressProblem, type AddressPolicy } from '@pos-relay/shared'

type PeerId = ReturnType<typeof peerIdFromString>

export const MAX_ADDRS = MAX_RELAY_ADDRS
export const MAX_META_ENTRIES = 16

function parsePeerId (value: string): PeerId | undefined {
  try {
    return peerIdFromString(value)
  } catch {
    return undefined
  }
}

/**
 * Validates one announced address (syntax, then the address policy shared with the client SDK)
 * and returns it as a full multiaddr ending in /p2p/<peer id>, or an error message.
 */
export function normaliseAddr (addr: string, peerId: PeerId | undefined, policy: AddressPolicy = {}): { addr: string } | { error: string } {
  let components: Component[]
  try {
    components = multiaddr(addr).getComponents()
  } catch (err) {
    return { error: `is not a valid multiaddr (${(err as Error).message})` }
  }
  if (components.some((c) => c.name === 'p2p-circuit')) {
    return { error: 'is a /p2p-circuit address; a relay must announce its own transport address' }
  }
  const p2pAt = components.findIndex((c) => c.name === 'p2p')
  if (p2pAt !== -1) {
    if (p2pAt !== components.length - 1) return { error: 'must not have components after /p2p/<peer id>' }
    const owner = parsePeerId(components[p2pAt]?.value ?? '')
    if (peerId && !owner?.equals(peerId)) {
      return { error: `names peer ${components[p2pAt]?.value}, which is not peer_id ${peerId.toString()}` }
    }
  }
  const transport = p2pAt === -1 ? components : components.slice(0, p2pAt)
  if (transport.length === 0) return { error: 'has no transport address (a bare /p2p/<peer id> is not dialable)' }
  if (transport.length < 2 && transport[0]?.name !== 'dnsaddr') {
    return { error: 'needs a host and a transport, e.g. /ip4/203.0.113.7/tcp/4001' }
  }
  const problem = relayAddressProblem(multiaddr(transport), policy)
  if (problem) return { error: problem }
  if (!peerId) return { addr }
  return { addr: multiaddr(transport).encapsulate(`/p2p/${peerId.toString()}`).toString() }
}

/**
 * The forms of peer id the server parses (peerIdFromString): base58btc multihashes (identity keys
 * start with 1, RSA sha2-256 hashes with Q) and CIDv1 libp2p-key in base36 or base32. The pattern
 * is syntax only; format libp2p-peer-id says the multihash must also decode (the fuzz hooks
 * generate real ones for it).
 */
export const PEER_ID_PATTERN = '^(?:[1Q][1-9A-HJ-NP-Za-km-z]{20,255}|(?:k51qzi5uqu5|kzwfwjn5ji4|k2k4r8)[0-9a-z]{10,245}|bafz[a-z2-7]{10,252})$'
/** Peer ids that embed their public key, in base58btc form: Ed25519 (12D3KooW…) and secp256k1 (16Uiu2…). What signed bodies need. */
export const SIGNING_PEER_ID_PATTERN = '^(?:12D3KooW[1-9A-HJ-NP-Za-km-z]{44}|16Uiu2[1-9A-HJ-NP-Za-km-z]{47})$'
const PEER_ID_FORMAT = { format: 'libp2p-peer-id', pattern: PEER_ID_PATTERN, maxLength: 256 }

const peerIdString = z
  .string()
  .max(256)
  .regex(new RegExp(PEER_ID_PATTERN), 'is not a libp2p PeerId (base58btc, or a CIDv1 in base36/base32)')
  .refine((s) => parsePeerId(s) !== undefined, 'is not a valid libp2p PeerId')

/** A libp2p PeerId in any accepted form; output is its base58btc string (what relays see). */
export const peerIdSchema = peerIdString
  .transform((s) => peerIdFromString(s).toString())
  .meta(PEER_ID_FORMAT)

/**
 * Syntax of the relay addresses the server may accept: a host of ip4/ip6/dns/dns4/dns6/dnsaddr,
 * then more components, at most one /p2p at the end. The policy (ranges, transports) is in the
 * field's description and format multiaddr; the pattern keeps generated values in ASCII.
 */
export const RELAY_ADDR_PATTERN = '^/(?:ip4|ip6|dns|dns4|dns6|dnsaddr)(?:/[!-.0-~]+)+$'
const RELAY_ADDR_RE = new RegExp(RELAY_ADDR_PATTERN)
const relayAddrString = z
  .string()
  .max(1024)
  .regex(RELAY_ADDR_RE, 'must be a multiaddr starting with /ip4, /ip6, /dns, /dns4, /dns6 or /dnsaddr')
  .meta({ format: 'multiaddr' })

export const relayIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'may only contain letters, digits and . _ : -')
  .meta({ description: 'Stable relay identifier chosen by the operator', example: 'relay-eu-1' })

/** A string of at most `max` characters counted as JSON Schema counts them (code points, not UTF-16 units). */
const codePoints = (min: number, max: number) => z
  .string()
  .refine((s) => { const n = [...s].length; return n >= min && n <= max }, `must be ${min}-${max} characters`)
  .meta({ ...(min > 0 ? { minLength: min } : {}), maxLength: max })

const metaSchema = z
  .record(codePoints(1, 256), codePoints(0, 256))
  .refine((m) => Object.keys(m).length <= MAX_META_ENTRIES, `must have at most ${MAX_META_ENTRIES} entries`)
  .meta({ description: 'Free-form string labels (region, version, ...)', maxProperties: MAX_META_ENTRIES })

export const SIGNATURE_FORMAT =
  'Signed registrations and deletions: the relay\'s libp2p key (Ed25519 or secp256k1, whose public key is inlined in ' +
  'peer_id) signs the bytes field("' + REGISTRATION_SIGNATURE_DOMAIN + '") || field(op) || field(id) || field(peer_id) || ' +
  'field(decimal signed_at) || u32be(number of addrs) || field(addr)..., where field(s) = u32be(byte length of utf8(s)) || utf8(s), ' +
  'op is "register", "refresh" (a refresh_only registration) or "delete", peer_id is in base58btc form, addrs are in the order and exact form sent (normal form: ' +
  'each ends in /p2p/<peer_id>, no duplicates; a delete usually signs an empty list) and signed_at is ms since the Unix epoch. ' +
  'signature is the base64url signature. Discovery refuses with 403: a signature that does not verify; a signed_at more than ' +
  `${MAX_SIGNATURE_SKEW_MS / 1000} s from its clock; a signed_at not later than the last one accepted for the id; an unsigned ` +
  'refresh or deletion of an entry registered signed (it stays owned by its key until it expires or is deleted signed); a ' +
  'deletion signed by another key; and, when discovery runs with --require-signed, any unsigned registration or deletion.'

const signedAtSchema = z
  .number()
  .int()
  .min(0)
  .max(Number.MAX_SAFE_INTEGER)
  .meta({ description: 'When the signature was made, ms since the Unix epoch (with signature)', example: 1764870000000 })

const signatureSchema = z
  .string()
  .min(1)
  .max(400)
  .regex(/^[A-Za-z0-9_-]+={0,2}$/, 'must be base64url')
  .meta({ description: "base64url signature by the relay's key; see the API description for the signed bytes" })

function requireBoth (body: { signed_at?: unknown; signature?: unknown }, ctx: z.RefinementCtx): void {
  if (body.signature !== undefined && body.signed_at === undefined) {
    ctx.addIssue({ code: 'custom', path: ['signed_at'], message: 'is required with signature' })
  }
  if (body.signed_at !== undefined && body.signature === undefined) {
    ctx.addIssue({ code: 'custom', path: ['signature'], message: 'is required with signed_at' })
  }
}

function signedPeerIdProblem (value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const id = parsePeerId(value)
  if (id && id.toString() !== value) return `must be in base58btc form when signed (${id.toString()})`
  if (id && id.publicKey == null) return 'does not embed its public key (RSA); signed registrations need an Ed25519 or secp256k1 peer id'
  return undefined
}

/**
 * POST /api/p2p/relays body. Output is normalised: peer_id in base58btc form, each addr ending in
 * /p2p/<peer_id>, duplicates removed.
 */
export function relayRegistrationSchemaFor (policy: AddressPolicy) {
  return z
    .strictObject({
      id: relayIdSchema,
      peer_id: peerIdString.meta({
        ...PEER_ID_FORMAT,
        description: 'libp2p PeerId of the relay. A signed registration needs the base58btc form of a key-embedding id (Ed25519 12D3KooW…, secp256k1 16Uiu2…).',
        example: '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN',
      }),
      addrs: z
        .array(relayAddrString)
        .min(1)
        .max(MAX_ADDRS)
        .meta({
          description:
            `Multiaddrs of the relay (at most ${MAX_RELAY_ADDRS}); /p2p/<peer_id> is appended when missing. ` +
            'Always refused: unspecified (0.0.0.0/8, ::), link-local (169.254.0.0/16, fe80::/10), multicast (224.0.0.0/4, ff00::/8) ' +
            'and broadcast addresses, UDP other than /quic-v1, port 0, hosts other than ip4/ip6/dns/dns4/dns6/dnsaddr. ' +
            'Loopback and private ranges (127.0.0.0/8, 10/8, 172.16/12, 192.168/16, 100.64/10, ::1, fc00::/7, localhost) are ' +
            'accepted unless discovery runs with --public-addresses-only. A refused address answers 400 naming it (addrs.<index>).',
          example: ['/ip4/203.0.113.7/tcp/4001'],
        }),
      meta: metaSchema.optional(),
      refresh_only: z.boolean().optional().meta({
        description:
          'true: refresh the live entry with this id, never create it (404 when absent, nothing stored). The heartbeat of relays ' +
          'whose entries the operator creates and deletes, so a relay the operator delisted cannot list itself again (docs/registry.md). ' +
          'A signed refresh-only registration is signed with operation "refresh".',
      }),
      signed_at: signedAtSchema.optional(),
      signature: signatureSchema.optional(),
    })
    .superRefine((body, ctx) => {
      // Runs even when other fields have (non-aborting) issues, so do not trust the types here.
      requireBoth(body, ctx)
      const signed = body.signature !== undefined
      if (signed) {
        const problem = signedPeerIdProblem(body.peer_id)
        if (problem) ctx.addIssue({ code: 'custom', path: ['peer_id'], message: problem })
      }
      if (!Array.isArray(body.addrs)) return
      const peerId = typeof body.peer_id === 'string' ? parsePeerId(body.peer_id) : undefined
      const seen = new Set<unknown>()
      body.addrs.forEach((addr, i) => {
        // an addr that fails the pattern already has its issue
        const result = typeof addr === 'string' && RELAY_ADDR_RE.test(addr) ? normaliseAddr(addr, peerId, policy) : undefined
        if (result && 'error' in result) ctx.addIssue({ code: 'custom', path: ['addrs', i], message: result.error })
        // what is signed is what is stored and served, so a signed body must already be normalised
        else if (signed && result && result.addr !== addr) {
          ctx.addIssue({ code: 'custom', path: ['addrs', i], message: `must be sent in normal form when signed (${result.addr})` })
        } else if (signed && seen.has(addr)) {
          ctx.addIssue({ code: 'custom', path: ['addrs', i], message: 'is a duplicate; a signed body must not repeat an address' })
        }
        seen.add(addr)
      })
    })
    .transform((body) => {
      // Only reached when everything above passed, so both parses succeed.
      const peerId = peerIdFromString(body.peer_id)
      const addrs = body.addrs.map((a) => {
        const result = normaliseAddr(a, peerId, policy)
        return 'addr' in result ? result.addr : a
      })
      return { ...body, peer_id: peerId.toString(), addrs: [...new Set(addrs)] }
    })
}

export const relayRegistrationSchema = relayRegistrationSchemaFor({})

/** DELETE /api/p2p/relays/{id} body: optional; present = a signed deletion. */
export const signedDeletionSchema = z
  .strictObject({
    peer_id: z
      .string()
      .regex(new RegExp(SIGNING_PEER_ID_PATTERN), 'must be the base58btc form of an Ed25519 or secp256k1 peer id')
      .refine((s) => parsePeerId(s) !== undefined, 'is not a valid libp2p PeerId')
      .superRefine((s, ctx) => {
        const problem = signedPeerIdProblem(s)
        if (problem) ctx.addIssue({ code: 'custom', message: problem })
      })
      .meta({ description: "The signer's (the entry's) peer id, base58btc", format: 'libp2p-peer-id', pattern: SIGNING_PEER_ID_PATTERN }),
    addrs: z
      .array(z.string().max(1024))
      .max(MAX_ADDRS)
      .optional()
      .meta({ description: 'Addresses included in the signed bytes, as signed; default [] (what our relays sign)' }),
    signed_at: signedAtSchema,
    signature: signatureSchema,
  })
  .meta({ description: 'A signed deletion (see the API description for the signed bytes). Without a body the deletion is unsigned.' })

const isoTime = z.string().meta({ format: 'date-time' })

export const relayRecordSchema = z
  .object({
    id: z.string(),
    peer_id: z.string(),
    addrs: z.array(z.string()).meta({ description: 'Full multiaddrs, each ending in /p2p/<peer_id>' }),
    registered_at: isoTime,
    updated_at: isoTime,
    expires_at: isoTime,
    meta: z.record(z.string(), z.string()).optional(),
    signed_at: z
      .number()
      .optional()
      .meta({ description: 'Present when the entry was registered signed: ms of the last signed operation accepted; only its key can refresh or delete it' }),
  })

export const registrationResultSchema = relayRecordSchema
  .extend({
    ttl_seconds: z.number().meta({ description: 'Re-register (heartbeat) well before this many seconds pass' }),
  })

export const errorSchema = z
  .object({
    error: z.string().meta({ example: 'Bad Request' }),
    message: z.string(),
    field: z.string().optional().meta({ description: 'Path of the offending field, e.g. addrs.1' }),
    statusCode: z.number(),
  })

export type ErrorBody = z.infer<typeof errorSchema>

export function errorBody (statusCode: number, message: string, field?: string): ErrorBody {
  return { error: STATUS_CODES[statusCode] ?? 'Error', message, ...(field === undefined ? {} : { field }), statusCode }
}

export const MAX_RANKED_RELAYS = 16

/** GET /api/p2p/relays query; unknown parameters are ignored (see the route's description). */
export const relayQuerySchema = z.object({
  for: peerIdSchema.optional().meta({ ...PEER_ID_FORMAT, description: 'Answer only the relays ranked first for this peer id (any accepted form; ranked by its base58btc form)' }),
  count: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_RANKED_RELAYS)
    .default(3)
    .meta({ description: `With \`for\`: how many relays (1-${MAX_RANKED_RELAYS}, default 3); ignored without it` }),
})
