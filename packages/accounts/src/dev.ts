import { randomBytes } from 'node:crypto'
import type { Account, AccountStore, Tier } from './contract.js'
import { createMemoryAccountStore } from './account-store.js'
import { createMemoryUsageSink, type UsageSink } from './metering.js'
import { createMemoryRevocationBus } from './revocation.js'
import { DEFAULT_TIERS } from './tiers.js'
import { generateTicketKey, TicketIssuer, TicketVerifier, type TicketKey } from './tickets.js'
import type { RevocationBus } from './types.js'

export interface DevAccounts {
  tiers: Record<string, Tier>
  keys: TicketKey[]
  issuer: TicketIssuer
  /** verifies with the issuer's public keys, no network */
  verifier: TicketVerifier
  store: AccountStore
  /** shared by discovery (publishes) and the in-process relay (subscribes, isRevoked) */
  revocations: RevocationBus
  /** shared by the relay's UsageMeter (writes) and discovery's usage route (reads) */
  usageSink: UsageSink
  adminSecret: string
  /** the account created for local use, and its API key (shown once) */
  account: Account
  apiKey: string
  close: () => Promise<void>
}

/**
 * Everything accounts need in one process (`pos-relay dev`): a fresh in-memory ticket key, memory
 * store / bus / sink shared between discovery and the relay, an admin secret, and one account.
 */
export async function createDevAccounts (opts: { tiers?: Record<string, Tier>, accountName?: string, tier?: string, ticketTtlSeconds?: number } = {}): Promise<DevAccounts> {
  const tiers = opts.tiers ?? DEFAULT_TIERS
  const tier = opts.tier ?? ('free' in tiers ? 'free' : Object.keys(tiers)[0])
  if (tier === undefined || !(tier in tiers)) throw new Error(`unknown tier ${String(tier)}`)
  const keys = [await generateTicketKey()]
  const issuer = await TicketIssuer.create({ keys, ...(opts.ticketTtlSeconds !== undefined ? { ttlSeconds: opts.ticketTtlSeconds } : {}) })
  const verifier = new TicketVerifier({ jwks: issuer.jwks() })
  const revocations = createMemoryRevocationBus()
  const store = createMemoryAccountStore({ revocations })
  const usageSink = createMemoryUsageSink()
  const { account, api_key: apiKey } = await store.create({ name: opts.accountName ?? 'dev', tier })
  return {
    tiers,
    keys,
    issuer,
    verifier,
    store,
    revocations,
    usageSink,
    adminSecret: randomBytes(24).toString('base64url'),
    account,
    apiKey,
    async close () {
      await store.close()
      await revocations.close()
      await usageSink.close()
    },
  }
}
