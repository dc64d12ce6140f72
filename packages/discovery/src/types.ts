import {
  MAX_SIGNATURE_SKEW_MS,
  registrationSignatureProblem,
  type RegistrationProof,
  type SignedFields,
} from '@pos-relay/shared'

/** A live relay as stored and served by the discovery API. Timestamps are ISO 8601 (UTC). */
export interface RelayRecord {
  id: string
  /** base58btc PeerId string */
  peer_id: string
  /** full multiaddrs, each ending in /p2p/<peer_id> */
  addrs: string[]
  registered_at: string
  updated_at: string
  expires_at: string
  meta?: Record<string, string>
  /**
   * Set when the entry was registered signed (ms of the last signed operation accepted for it):
   * it can then only be refreshed or deleted signed by the key of its peer_id, with a later signed_at.
   */
  signed_at?: number
}

/** What a relay announces; `addrs` are already normalised (each ends in /p2p/<peer_id>). */
export interface RelayRegistration {
  id: string
  peer_id: string
  addrs: string[]
  meta?: Record<string, string>
}

export interface RelayStore {
  /**
   * Insert or refresh; keeps registered_at of a live record with the same id. ttlMs > 0.
   * While a record is live its id belongs to its peer id: registering it under another peer id
   * throws RegistrationConflictError and changes nothing.
   */
  register(reg: RelayRegistration, ttlMs: number, proof?: RegistrationProof, opts?: RegisterOptions): Promise<RelayRecord>
  /**
   * true if a live record existed. Unsigned: refused (RegistrationForbiddenError) when the live
   * record was registered signed. Signed: by the key of the live record's peer_id.
   */
  deregister(id: string, proof?: DeregistrationProof): Promise<boolean>
  /** only live (unexpired) records, sorted by id */
  list(): Promise<RelayRecord[]>
  get(id: string): Promise<RelayRecord | undefined>
  /** throws StoreUnavailableError if the backing store is unreachable */
  ping(): Promise<void>
  close(): Promise<void>
}

/** The backing store cannot be reached; the HTTP layer maps this to 503. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError'

  constructor (message = 'relay registry (Redis) is unreachable', options?: ErrorOptions) {
    super(message, options)
  }
}

export interface RegisterOptions {
  /**
   * Refresh a live entry, never create one (throws NotListedError when absent): the heartbeat
   * of relays whose entries another writer (the operator) creates and deletes. A signed
   * refresh-only registration is signed with operation `refresh`. See docs/registry.md.
   */
  refreshOnly?: boolean
}

/** A refresh-only registration found no live entry; the HTTP layer maps this to 404. */
export class NotListedError extends Error {
  override name = 'NotListedError'

  constructor (readonly id: string) {
    super(`relay id ${id} is not listed; a refresh-only registration does not create it (the operator lists pool relays when their pod is Ready)`)
  }
}

/** A live record with this id belongs to another peer id; the HTTP layer maps this to 409. */
export class RegistrationConflictError extends Error {
  override name = 'RegistrationConflictError'

  constructor (
    readonly id: string,
    readonly ownerPeerId: string
  ) {
    super(`relay id ${id} is registered by peer ${ownerPeerId}; another peer cannot take it over while it is live`)
  }
}

/**
 * A signed operation was refused (the HTTP layer maps this to 403): bad or foreign signature,
 * unsigned operation on a signed entry, replayed or skewed signed_at, unsigned when signatures
 * are required.
 */
export class RegistrationForbiddenError extends Error {
  override name = 'RegistrationForbiddenError'

  constructor (
    readonly reason: 'signature' | 'key' | 'unsigned' | 'replay' | 'skew' | 'required',
    message: string,
    readonly field: string
  ) {
    super(message)
  }
}

/** A signed deletion: the signer's peer id and the addrs it signed (usually none). */
export interface DeregistrationProof extends RegistrationProof {
  peer_id: string
  addrs: string[]
}

/**
 * Checks a proof's signature (throws RegistrationForbiddenError) and its signed_at against
 * `now` (the store's clock; Redis checks it again with its own clock inside the script).
 */
export async function verifyProof (fields: SignedFields, signature: string): Promise<void> {
  const problem = await registrationSignatureProblem(fields, signature)
  if (problem) throw new RegistrationForbiddenError('signature', problem, 'signature')
}

export function skewError (signedAt: number, now: number): RegistrationForbiddenError {
  return new RegistrationForbiddenError(
    'skew',
    `signed_at ${signedAt} is ${Math.round((signedAt - now) / 1000)} s from discovery's clock (${now}); at most ${MAX_SIGNATURE_SKEW_MS / 1000} s allowed`,
    'signed_at'
  )
}

export function replayError (id: string, signedAt: number, last: number): RegistrationForbiddenError {
  return new RegistrationForbiddenError(
    'replay',
    `signed_at ${signedAt} is not later than ${last}, the last signed operation accepted for relay id ${id} (replay?)`,
    'signed_at'
  )
}

export function unsignedError (id: string, op: 'register' | 'delete'): RegistrationForbiddenError {
  return new RegistrationForbiddenError(
    'unsigned',
    `relay id ${id} was registered signed; an unsigned ${op === 'register' ? 'refresh' : 'deletion'} is refused, sign it with the relay's key`,
    'signature'
  )
}

export function foreignKeyError (id: string, signer: string, owner: string): RegistrationForbiddenError {
  return new RegistrationForbiddenError(
    'key',
    `relay id ${id} belongs to peer ${owner}; a deletion signed by ${signer} is refused`,
    'peer_id'
  )
}

export function assertTtl (ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive number, got ${ttlMs}`)
}

/** Plain code-unit order, independent of locale. */
export function byId (a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** Copies only the registration fields, so callers' extra properties never get stored. */
export function pickRegistration (reg: RelayRegistration): RelayRegistration {
  const { id, peer_id, addrs, meta } = reg
  return meta === undefined ? { id, peer_id, addrs: [...addrs] } : { id, peer_id, addrs: [...addrs], meta: { ...meta } }
}
