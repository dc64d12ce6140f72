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
  register(reg: RelayRegistration, ttlMs: number): Promise<RelayRecord>
  /** true if a live record existed */
  deregister(id: string): Promise<boolean>
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

  constructor(message = 'relay registry (Redis) is unreachable', options?: ErrorOptions) {
    super(message, options)
  }
}

/** A live record with this id belongs to another peer id; the HTTP layer maps this to 409. */
export class RegistrationConflictError extends Error {
  override name = 'RegistrationConflictError'

  constructor(
    readonly id: string,
    readonly ownerPeerId: string,
  ) {
    super(`relay id ${id} is registered by peer ${ownerPeerId}; another peer cannot take it over while it is live`)
  }
}

export function assertTtl(ttlMs: number): void {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive number, got ${ttlMs}`)
}

/** Plain code-unit order, independent of locale. */
export function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** Copies only the registration fields, so callers' extra properties never get stored. */
export function pickRegistration(reg: RelayRegistration): RelayRegistration {
  const { id, peer_id, addrs, meta } = reg
  return meta === undefined ? { id, peer_id, addrs: [...addrs] } : { id, peer_id, addrs: [...addrs], meta: { ...meta } }
}
