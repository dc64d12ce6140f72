import type { RevocationEvent, TicketClaims } from './contract.js'

/**
 * Live revocation shared by discovery (publisher) and relays (subscribers).
 * `publish` records the revocation persistently (so a relay that missed the message still refuses)
 * and broadcasts it; handlers get every revocation published anywhere.
 */
export interface RevocationBus {
  publish: (evt: RevocationEvent) => Promise<void>
  /** handler is called for each revocation (never for reinstatements); returns an unsubscribe function */
  subscribe: (handler: (evt: RevocationEvent) => void) => () => void
  /** true when the ticket's account is disabled or its jti revoked */
  isRevoked: (claims: Pick<TicketClaims, 'account' | 'jti'>) => Promise<boolean>
  /** lifts an account revocation (account enabled again); not delivered to handlers */
  reinstateAccount: (accountId: string) => Promise<void>
  close: () => Promise<void>
}

/** The accounts / usage Redis cannot be reached (the HTTP layer answers 503). */
export class AccountsUnavailableError extends Error {
  override name = 'AccountsUnavailableError'

  constructor (message = 'accounts store (Redis) is unreachable', options?: ErrorOptions) {
    super(message, options)
  }
}

/** Minimal logger shape (pino-compatible). */
export interface MinimalLogger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}
