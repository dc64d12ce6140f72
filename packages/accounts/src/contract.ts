/**
 * The contract of @pos-relay/accounts: what the discovery API, the relay and
 * the CLI use. Implementations live beside this file.
 *
 * Accounts and their API keys, tiers, short-lived relay tickets (Ed25519
 * JWTs bound to the peer id), live revocation, billing-grade metering and
 * monthly byte quotas, all kept in Redis.
 */

/** What an account may use. Sent to relays inside tickets (`tier`) and looked up by name. */
export interface Tier {
  name: string
  /** reservations one account may hold at once, fleet-wide */
  max_reservations: number
  /** bytes per circuit, both directions (announced in the reservation's limit); 0 = relay default */
  circuit_data_limit_bytes: number
  /** seconds per circuit; 0 = relay default */
  circuit_duration_seconds: number
  /** bytes relayed per calendar month (UTC), both directions; 0 = unlimited */
  monthly_bytes: number
}

export interface Account {
  id: string
  name: string
  tier: string
  disabled: boolean
  created_at: string
  /** id of the current API key (the key itself is shown once, at creation or rotation) */
  key_id: string
}

export interface AccountStore {
  create: (input: { name: string, tier: string }) => Promise<{ account: Account, api_key: string }>
  list: () => Promise<Account[]>
  get: (id: string) => Promise<Account | undefined>
  /** disables the account and publishes its revocation; undefined if unknown */
  disable: (id: string) => Promise<Account | undefined>
  enable: (id: string) => Promise<Account | undefined>
  /** replaces the API key; the old one stops working at once */
  rotateKey: (id: string) => Promise<{ account: Account, api_key: string } | undefined>
  /** constant-time check of an API key; undefined when unknown, wrong or the account is disabled */
  authenticate: (apiKey: string) => Promise<Account | undefined>
  close: () => Promise<void>
}

/** Claims of a relay ticket (JWT, EdDSA). `sub` is the peer id it is bound to. */
export interface TicketClaims {
  /** account id */
  account: string
  tier: string
  /** base58 peer id of the peer the ticket was issued to */
  sub: string
  iat: number
  /** seconds since epoch; at most 1 h after iat */
  exp: number
  /** unique ticket id */
  jti: string
}

export type TicketRejection =
  | 'malformed' // not a compact JWS, bad base64/JSON, truncated
  | 'bad_algorithm' // alg is not EdDSA (none, HS256 with the public key, ...)
  | 'unknown_key' // kid not in the key set
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_claims' // missing/ill-typed claims, lifetime > 1 h
  | 'wrong_peer' // sub is not the presenting peer
  | 'revoked' // ticket or account revoked/disabled

export class TicketError extends Error {
  override name = 'TicketError'
  constructor (readonly reason: TicketRejection, message?: string) {
    super(message ?? reason)
  }
}

export interface RevocationEvent { kind: 'account' | 'ticket', id: string }

export interface UsageDelta {
  bytes_to_destination: number
  bytes_to_source: number
  circuits: number
  circuit_seconds: number
  reservation_seconds: number
}

export interface UsageRow extends UsageDelta {
  account: string
  /** start of the hour bucket, ISO */
  hour: string
}
