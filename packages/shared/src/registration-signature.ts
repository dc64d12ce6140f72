/**
 * Signed relay registrations and deletions (discovery API, operator registry).
 *
 * The relay's libp2p key signs a canonical byte string; discovery verifies it
 * offline from `peer_id`, whose Ed25519 (or secp256k1) public key is inlined in
 * the peer id. Chosen over a libp2p signed envelope because the payload would
 * need a canonical encoding anyway, and this one is a few lines in Rust or Go:
 *
 *   field(s)  = u32be(byte length of utf8(s)) || utf8(s)
 *   payload   = field("pos-relay/relay-registration/v1")   domain separation
 *            || field(op)                                   "register" | "refresh" | "delete"
 *            || field(id) || field(peer_id)                 peer_id in base58btc form
 *            || field(decimal signed_at)                    ms since the Unix epoch, integer
 *            || u32be(number of addrs) || field(addr)...    in the order sent, exactly as sent
 *
 * `signature` is the key's signature over `payload`, base64url (padding optional).
 */
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'

export const REGISTRATION_SIGNATURE_DOMAIN = 'pos-relay/relay-registration/v1'
/** discovery refuses a signed_at further than this from its clock */
export const MAX_SIGNATURE_SKEW_MS = 60_000

/** `refresh`: a refresh-only heartbeat (never creates the entry), so it cannot be replayed as a creation */
export type SignedOperation = 'register' | 'refresh' | 'delete'

export interface SignedFields {
  op: SignedOperation
  id: string
  peer_id: string
  addrs: readonly string[]
  signed_at: number
}

/** What a signed request carries besides the entry itself. */
export interface RegistrationProof {
  signed_at: number
  /** base64url */
  signature: string
}

const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}

const field = (s: string): Uint8Array[] => {
  const bytes = new TextEncoder().encode(s)
  return [u32(bytes.length), bytes]
}

/** The exact bytes signed (see the module comment). */
export function registrationSigningPayload (f: SignedFields): Uint8Array {
  if (!Number.isSafeInteger(f.signed_at) || f.signed_at < 0) throw new RangeError('signed_at must be a non-negative integer (ms)')
  const parts = [
    ...field(REGISTRATION_SIGNATURE_DOMAIN),
    ...field(f.op),
    ...field(f.id),
    ...field(f.peer_id),
    ...field(String(f.signed_at)),
    u32(f.addrs.length),
    ...f.addrs.flatMap(field)
  ]
  return Buffer.concat(parts)
}

/** Signs with the relay's private key; `peer_id` in `fields` must be that key's peer id. */
export async function signRegistration (key: PrivateKey, fields: Omit<SignedFields, 'signed_at'> & { signed_at?: number }): Promise<RegistrationProof> {
  const signed_at = fields.signed_at ?? Date.now()
  const sig = await key.sign(registrationSigningPayload({ ...fields, signed_at }))
  return { signed_at, signature: Buffer.from(sig).toString('base64url') }
}

/** Why a signature does not verify, or undefined when it does. */
export async function registrationSignatureProblem (fields: SignedFields, signature: string): Promise<string | undefined> {
  let peerId: PeerId
  try {
    peerId = peerIdFromString(fields.peer_id)
  } catch {
    return 'peer_id is not a valid libp2p PeerId'
  }
  if (peerId.publicKey == null) return 'peer_id does not embed its public key (RSA); signed registrations need an Ed25519 or secp256k1 peer id'
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(signature) || signature.length > 400) return 'signature is not base64url'
  let ok = false
  try {
    ok = await peerId.publicKey.verify(registrationSigningPayload(fields), Buffer.from(signature, 'base64url'))
  } catch {
    ok = false
  }
  return ok ? undefined : `signature does not verify for ${fields.op} of ${fields.id} by the key of peer ${fields.peer_id}`
}
