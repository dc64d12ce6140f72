import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import {
  createRedisAccountStore,
  createRedisRevocationBus,
  createRedisUsageSink,
  DEFAULT_TIERS,
  generateTicketKey,
  TicketIssuer,
  type AccountStore,
  type RevocationBus,
  type RevocationEvent,
  type UsageSink,
} from '@pos-relay/accounts'
import { createDiscoveryServer, createRedisStore, type RelayStore } from '@pos-relay/discovery'
import type { FastifyInstance, InjectOptions } from 'fastify'
import type { pino } from 'pino'
import { PEER_A } from './fixtures.ts'
import { useRedisHarness } from './harness.ts'

/**
 * The accounts API's fixture: a discovery server with accounts on a fresh key prefix, a second
 * revocation bus as a relay would have, and helpers for accounts and tickets. Importing it gives
 * the test file one Redis (see harness.ts).
 */
export const P2P = 'test-p2p-secret-7f3a9c'
export const ADMIN = 'test-admin-secret-0b1d2e'
export const asBearer = (s: string) => ({ authorization: `Bearer ${s}` })
export const ADMIN_AUTH = asBearer(ADMIN)

const harness = useRedisHarness()
/** the discovery's ticket issuer, one per test file */
export const issuer = await TicketIssuer.create({ keys: [await generateTicketKey()] })

export interface Setup {
  app: FastifyInstance
  store: AccountStore
  relays: RelayStore
  bus: RevocationBus
  sink: UsageSink
  /** a second bus on the same Redis, as a relay would have */
  events: RevocationEvent[]
  prefix: string
}

export async function setup (opts: { url?: string, logger?: pino.Logger, adminSecret?: string, authFailuresPerMinute?: number } = {}): Promise<Setup> {
  const url = opts.url ?? harness.redis.url
  const prefix = `acc-api-${randomUUID()}:`
  const bus = createRedisRevocationBus({ redisUrl: url, keyPrefix: prefix })
  const relayBus = createRedisRevocationBus({ redisUrl: url, keyPrefix: prefix })
  const store = createRedisAccountStore({ redisUrl: url, keyPrefix: prefix, revocations: bus })
  const sink = createRedisUsageSink({ redisUrl: url, keyPrefix: prefix })
  const relays = createRedisStore({ url, keyPrefix: prefix })
  const events: RevocationEvent[] = []
  relayBus.subscribe((e) => events.push(e))
  await relayBus.isRevoked({ account: 'warmup', jti: 'warmup' }).catch(() => {})
  harness.onCleanup(() => Promise.all([bus.close(), relayBus.close(), store.close(), sink.close(), relays.close()]))
  const app = await createDiscoveryServer({
    store: relays,
    p2pSecret: P2P,
    logger: opts.logger ?? false,
    ...(opts.authFailuresPerMinute === undefined ? {} : { authFailuresPerMinute: opts.authFailuresPerMinute }),
    accounts: { store, issuer, adminSecret: opts.adminSecret ?? ADMIN, revocations: bus, usage: sink, tiers: DEFAULT_TIERS },
  })
  harness.onCleanup(() => app.close())
  return { app, store, relays, bus, sink, events, prefix }
}

export const inject = (app: FastifyInstance, method: InjectOptions['method'], url: string, headers: Record<string, string> = ADMIN_AUTH, payload?: unknown) =>
  app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as InjectOptions['payload'] }) })

export async function createAccount (app: FastifyInstance, name = 'Acme', tier = 'free') {
  const res = await inject(app, 'POST', '/api/admin/accounts', ADMIN_AUTH, { name, tier })
  assert.equal(res.statusCode, 201, res.body)
  return res.json() as { account: { id: string, key_id: string, tier: string, disabled: boolean }, api_key: string }
}

export const ticket = (app: FastifyInstance, key: string, peer_id: unknown = PEER_A) => inject(app, 'POST', '/api/p2p/tickets', asBearer(key), { peer_id })
