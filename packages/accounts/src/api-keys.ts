import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * API keys look like `pra_<key id: 16 hex>_<secret: 43 base64url>` (256 random bits). The key id
 * is public (it is `Account.key_id`) and finds the account; only SHA-256(key) is stored, and it is
 * compared in constant time. A fast hash is enough: the secret has 256 bits of entropy, so there is
 * nothing to brute-force offline.
 */
export const API_KEY_PATTERN = /^pra_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/

export interface NewApiKey {
  apiKey: string
  keyId: string
  /** hex SHA-256 of the whole key */
  hash: string
}

export function newApiKey (): NewApiKey {
  const keyId = randomBytes(8).toString('hex')
  const apiKey = `pra_${keyId}_${randomBytes(32).toString('base64url')}`
  return { apiKey, keyId, hash: hashApiKey(apiKey) }
}

export function hashApiKey (apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex')
}

/** The key id of a well-formed key, else undefined (never throws). */
export function apiKeyId (apiKey: unknown): string | undefined {
  if (typeof apiKey !== 'string' || apiKey.length !== 64) return undefined
  return API_KEY_PATTERN.exec(apiKey)?.[1]
}

/** Constant-time comparison of a presented key with a stored hex hash. */
export function apiKeyMatches (apiKey: string, storedHash: string | undefined): boolean {
  const presented = createHash('sha256').update(apiKey).digest()
  const stored = Buffer.from(typeof storedHash === 'string' && /^[0-9a-f]{64}$/.test(storedHash) ? storedHash : '00'.repeat(32), 'hex')
  return timingSafeEqual(presented, stored) && storedHash !== undefined
}

export function newAccountId (): string {
  return `acc_${randomBytes(8).toString('hex')}`
}

/** Account ids as generated (`acc_` + 16 hex) or chosen by an operator: 1-64 of [A-Za-z0-9_-]. */
export const ACCOUNT_ID = /^[A-Za-z0-9_-]{1,64}$/
