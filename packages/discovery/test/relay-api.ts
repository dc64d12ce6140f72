import { randomUUID } from 'node:crypto'
import { createDiscoveryServer, createRedisStore, type RelayStore } from '@pos-relay/discovery'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { PEER_A } from './fixtures.ts'
import { useRedisHarness } from './harness.ts'

/** The relay registry API's fixture. Importing it gives the test file one Redis (see harness.ts). */
const harness = useRedisHarness()

export const SECRET = 'test-p2p-secret-7f3a9c'
export const AUTH = { authorization: `Bearer ${SECRET}` }
export const RELAYS = '/api/p2p/relays'

type ServerOptions = Partial<Parameters<typeof createDiscoveryServer>[0]>

/** A server on a fresh key prefix of `url` (default: the shared Redis). */
export async function setup (opts: ServerOptions & { url?: string } = {}): Promise<{ app: FastifyInstance; store: RelayStore }> {
  const store = createRedisStore({ url: opts.url ?? harness.redis.url, keyPrefix: `api-${randomUUID()}:` })
  harness.onCleanup(() => store.close())
  const app = await createDiscoveryServer({ store, p2pSecret: SECRET, logger: false, ...opts })
  harness.onCleanup(() => app.close())
  return { app, store }
}

export const post = (app: FastifyInstance, payload: unknown, headers: Record<string, string> = AUTH) =>
  app.inject({ method: 'POST', url: RELAYS, headers, payload: payload as InjectOptions['payload'] })

export const validBody = (id = 'relay-1') => ({
  id,
  peer_id: PEER_A,
  addrs: ['/ip4/203.0.113.7/tcp/4001', `/dns4/relay.example.com/tcp/443/wss/p2p/${PEER_A}`],
  meta: { region: 'eu-west' },
})
