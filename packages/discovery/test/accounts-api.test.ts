import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, afterEach, before, describe, it } from 'node:test'
import {
  createMemoryAccountStore,
  createMemoryRevocationBus,
  createMemoryUsageSink,
  createRedisAccountStore,
  createRedisRevocationBus,
  createRedisUsageSink,
  DEFAULT_TIERS,
  generateTicketKey,
  TicketIssuer,
  TicketVerifier,
  ticketKeysUrl,
  UsageMeter,
  type AccountStore,
  type RevocationBus,
  type RevocationEvent,
  type UsageSink,
} from '@pos-relay/accounts'
import { createDiscoveryServer, createRedisStore, type RelayStore } from '@pos-relay/discovery'
import { startRedis, waitFor, type RedisServer } from '@pos-relay/testing'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { pino } from 'pino'
import { PEER_A, PEER_A_CID, PEER_B, registration } from './fixtures.ts'

const P2P = 'test-p2p-secret-7f3a9c'
const ADMIN = 'test-admin-secret-0b1d2e'
const asBearer = (s: string) => ({ authorization: `Bearer ${s}` })
const ADMIN_AUTH = asBearer(ADMIN)

let redis: RedisServer
let issuer: TicketIssuer
const cleanups: (() => Promise<unknown>)[] = []

before(async () => {
  redis = await startRedis()
  issuer = await TicketIssuer.create({ keys: [await generateTicketKey()] })
})
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
after(async () => {
  await redis?.stop()
})

interface Setup {
  app: FastifyInstance
  store: AccountStore
  relays: RelayStore
  bus: RevocationBus
  sink: UsageSink
  /** a second bus on the same Redis, as a relay would have */
  events: RevocationEvent[]
  prefix: string
}

async function setup (opts: { url?: string, logger?: pino.Logger, adminSecret?: string, authFailuresPerMinute?: number } = {}): Promise<Setup> {
  const url = opts.url ?? redis.url
  const prefix = `acc-api-${randomUUID()}:`
  const bus = createRedisRevocationBus({ redisUrl: url, keyPrefix: prefix })
  const relayBus = createRedisRevocationBus({ redisUrl: url, keyPrefix: prefix })
  const store = createRedisAccountStore({ redisUrl: url, keyPrefix: prefix, revocations: bus })
  const sink = createRedisUsageSink({ redisUrl: url, keyPrefix: prefix })
  const relays = createRedisStore({ url, keyPrefix: prefix })
  const events: RevocationEvent[] = []
  relayBus.subscribe((e) => events.push(e))
  await relayBus.isRevoked({ account: 'warmup', jti: 'warmup' }).catch(() => {})
  cleanups.push(() => Promise.all([bus.close(), relayBus.close(), store.close(), sink.close(), relays.close()]))
  const app = await createDiscoveryServer({
    store: relays,
    p2pSecret: P2P,
    logger: opts.logger ?? false,
    ...(opts.authFailuresPerMinute === undefined ? {} : { authFailuresPerMinute: opts.authFailuresPerMinute }),
    accounts: { store, issuer, adminSecret: opts.adminSecret ?? ADMIN, revocations: bus, usage: sink, tiers: DEFAULT_TIERS },
  })
  cleanups.push(() => app.close())
  return { app, store, relays, bus, sink, events, prefix }
}

const inject = (app: FastifyInstance, method: InjectOptions['method'], url: string, headers: Record<string, string> = ADMIN_AUTH, payload?: unknown) =>
  app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as InjectOptions['payload'] }) })

async function createAccount (app: FastifyInstance, name = 'Acme', tier = 'free') {
  const res = await inject(app, 'POST', '/api/admin/accounts', ADMIN_AUTH, { name, tier })
  assert.equal(res.statusCode, 201, res.body)
  return res.json() as { account: { id: string, key_id: string, tier: string, disabled: boolean }, api_key: string }
}

const ticket = (app: FastifyInstance, key: string, peer_id: unknown = PEER_A) => inject(app, 'POST', '/api/p2p/tickets', asBearer(key), { peer_id })

describe('throttling failed admin and API key authentications', () => {
  it('counts failures of both per source IP, then answers 429', async () => {
    const { app } = await setup({ authFailuresPerMinute: 4 })
    const { api_key } = await createAccount(app)
    assert.equal((await inject(app, 'GET', '/api/admin/accounts', asBearer('wrong-admin'))).statusCode, 401)
    assert.equal((await inject(app, 'GET', '/api/admin/accounts', asBearer('wrong-admin-2'))).statusCode, 401)
    assert.equal((await ticket(app, 'pra_wrong')).statusCode, 401)
    assert.equal((await ticket(app, 'pra_wrong_2')).statusCode, 401)
    const admin = await inject(app, 'GET', '/api/admin/accounts')
    assert.equal(admin.statusCode, 429, admin.body)
    assert.ok(Number(admin.headers['retry-after']) >= 1)
    assert.equal((await ticket(app, api_key)).statusCode, 429)
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.ok(text.includes('pos_relay_discovery_ticket_requests_total{result="throttled"} 1'), 'a throttled ticket request is counted as throttled')
    assert.ok(text.includes('pos_relay_discovery_ticket_requests_total{result="unauthorized"} 2'))
  })
})

describe('without accounts', () => {
  it('every account route answers 404 in the usual error shape', async () => {
    const relays = createRedisStore({ url: redis.url, keyPrefix: `noacc-${randomUUID()}:` })
    cleanups.push(() => relays.close())
    const app = await createDiscoveryServer({ store: relays, p2pSecret: P2P, logger: false })
    cleanups.push(() => app.close())
    for (const [method, url] of [
      ['POST', '/api/p2p/tickets'], ['GET', '/api/p2p/ticket-keys'], ['POST', '/api/admin/accounts'], ['GET', '/api/admin/accounts'],
      ['POST', '/api/admin/accounts/acc_1/disable'], ['POST', '/api/admin/accounts/acc_1/enable'], ['POST', '/api/admin/accounts/acc_1/rotate-key'],
      ['POST', '/api/admin/tickets/j/revoke'], ['GET', '/api/admin/usage'],
    ] as const) {
      const res = await inject(app, method, url, ADMIN_AUTH, method === 'POST' ? {} : undefined)
      assert.equal(res.statusCode, 404, `${method} ${url}`)
      assert.deepEqual(res.json(), { error: 'Not Found', message: 'accounts are not enabled on this discovery server', statusCode: 404 })
    }
  })

  it('refuses an admin secret equal to the p2p secret, or empty', async () => {
    const relays = createRedisStore({ url: redis.url })
    cleanups.push(() => relays.close())
    const accounts = { store: createMemoryAccountStore(), issuer, revocations: createMemoryRevocationBus(), usage: createMemoryUsageSink(), tiers: DEFAULT_TIERS }
    await assert.rejects(createDiscoveryServer({ store: relays, p2pSecret: P2P, logger: false, accounts: { ...accounts, adminSecret: P2P } }), /differ/)
    await assert.rejects(createDiscoveryServer({ store: relays, p2pSecret: P2P, logger: false, accounts: { ...accounts, adminSecret: '' } }), /adminSecret/)
  })
})

describe('admin: accounts', () => {
  it('creates, lists, disables, enables and rotates keys', async () => {
    const { app, store, events } = await setup()
    const created = await createAccount(app, 'Acme Corp', 'pro')
    assert.match(created.api_key, /^pra_[0-9a-f]{16}_/)
    assert.equal(created.account.tier, 'pro')
    assert.equal((await store.authenticate(created.api_key))?.id, created.account.id)

    // names are not trimmed but refused with surrounding whitespace (the schema's pattern says so exactly)
    const padded = await inject(app, 'POST', '/api/admin/accounts', ADMIN_AUTH, { name: '  Beta  ', tier: 'free' })
    assert.equal(padded.statusCode, 400, padded.body)
    assert.equal(padded.json().field, 'name')
    const res = await inject(app, 'POST', '/api/admin/accounts', ADMIN_AUTH, { name: 'Beta', tier: 'free' })
    assert.equal(res.headers['cache-control'], 'no-store')
    assert.equal(res.json().account.name, 'Beta')

    const list = await inject(app, 'GET', '/api/admin/accounts')
    assert.equal(list.statusCode, 200)
    assert.deepEqual(list.json().map((a: { name: string }) => a.name), ['Acme Corp', 'Beta'])
    assert.equal(list.body.includes(created.api_key), false)
    assert.equal(list.body.includes('key_hash'), false)

    const disabled = await inject(app, 'POST', `/api/admin/accounts/${created.account.id}/disable`)
    assert.equal(disabled.statusCode, 200, disabled.body)
    assert.equal(disabled.json().disabled, true)
    await waitFor(() => events.some((e) => e.kind === 'account' && e.id === created.account.id), { timeoutMs: 5000, message: 'relay bus never heard the disable' })
    assert.equal((await ticket(app, created.api_key)).statusCode, 401)

    const enabled = await inject(app, 'POST', `/api/admin/accounts/${created.account.id}/enable`)
    assert.equal(enabled.json().disabled, false)
    assert.equal((await ticket(app, created.api_key)).statusCode, 200)

    const rotated = await inject(app, 'POST', `/api/admin/accounts/${created.account.id}/rotate-key`)
    assert.equal(rotated.statusCode, 200)
    assert.equal(rotated.headers['cache-control'], 'no-store')
    const { api_key: newKey, account } = rotated.json()
    assert.notEqual(newKey, created.api_key)
    assert.notEqual(account.key_id, created.account.key_id)
    assert.equal((await ticket(app, created.api_key)).statusCode, 401, 'old key stops at once')
    assert.equal((await ticket(app, newKey)).statusCode, 200)
  })

  it('404 for unknown accounts, 400 for malformed ids, without side effects', async () => {
    const { app, events } = await setup()
    for (const action of ['disable', 'enable', 'rotate-key']) {
      const unknown = await inject(app, 'POST', `/api/admin/accounts/acc_0000000000000000/${action}`)
      assert.equal(unknown.statusCode, 404)
      assert.deepEqual(unknown.json(), { error: 'Not Found', message: 'account not found', statusCode: 404 })
      const bad = await inject(app, 'POST', `/api/admin/accounts/bad%20id!/${action}`)
      assert.equal(bad.statusCode, 400)
      assert.equal(bad.json().field, 'id')
    }
    assert.deepEqual(events, [])
  })

  const badBodies: [string, unknown, string | undefined, RegExp][] = [
    ['an unknown tier', { name: 'a', tier: 'gold' }, 'tier', /tier: unknown tier "gold" \(configured: free, pro, unlimited\)/],
    ['a malformed tier', { name: 'a', tier: 'Gold Tier' }, 'tier', /tier/],
    ['no name', { tier: 'free' }, 'name', /name/],
    ['a blank name', { name: '   ', tier: 'free' }, 'name', /name/],
    ['a long name', { name: 'x'.repeat(129), tier: 'free' }, 'name', /name/],
    ['a numeric name', { name: 5, tier: 'free' }, 'name', /expected string/],
    ['an extra key', { name: 'a', tier: 'free', disabled: true }, 'disabled', /Unrecognized key/],
    ['an array', [{ name: 'a', tier: 'free' }], undefined, /expected object/],
  ]
  for (const [name, body, field, message] of badBodies) {
    it(`400 when creating with ${name}, storing nothing`, async () => {
      const { app, store } = await setup()
      const res = await inject(app, 'POST', '/api/admin/accounts', ADMIN_AUTH, body)
      assert.equal(res.statusCode, 400, res.body)
      assert.equal(res.json().error, 'Bad Request')
      assert.equal(res.json().field, field)
      assert.match(res.json().message, message)
      assert.deepEqual(await store.list(), [])
    })
  }

  it('malformed JSON and wrong content types, storing nothing', async () => {
    const { app, store } = await setup()
    const bad = await app.inject({ method: 'POST', url: '/api/admin/accounts', headers: { ...ADMIN_AUTH, 'content-type': 'application/json' }, payload: '{"name":' })
    assert.equal(bad.statusCode, 400)
    const text = await app.inject({ method: 'POST', url: '/api/admin/accounts', headers: { ...ADMIN_AUTH, 'content-type': 'text/plain' }, payload: 'x' })
    assert.equal(text.statusCode, 415)
    const big = await inject(app, 'POST', '/api/admin/accounts', ADMIN_AUTH, { name: 'a', tier: 'free', pad: 'x'.repeat(70_000) })
    assert.equal(big.statusCode, 413)
    assert.deepEqual(await store.list(), [])
  })
})

describe('admin authentication', () => {
  const adminRoutes: [InjectOptions['method'], string, unknown][] = [
    ['POST', '/api/admin/accounts', { name: 'x', tier: 'free' }],
    ['GET', '/api/admin/accounts', undefined],
    ['POST', '/api/admin/accounts/ID/disable', undefined],
    ['POST', '/api/admin/accounts/ID/enable', undefined],
    ['POST', '/api/admin/accounts/ID/rotate-key', undefined],
    ['POST', '/api/admin/tickets/JTI/revoke', undefined],
    ['GET', '/api/admin/usage?format=csv', undefined],
  ]

  it('401 on every admin route for no, wrong, p2p-secret and API-key credentials; nothing changes', async () => {
    const { app, store, events, sink, bus } = await setup()
    const victim = await createAccount(app)
    await store.disable(victim.account.id)
    await waitFor(() => events.length === 1, { timeoutMs: 5000 })
    const t = (await inject(app, 'POST', `/api/admin/accounts/${victim.account.id}/enable`)).json()
    assert.equal(t.disabled, false)
    const other = await createAccount(app, 'other')
    const snapshot = JSON.stringify(await store.list())
    const eventsBefore = events.length
    const credentials: [string, Record<string, string>][] = [
      ['no header', {}],
      ['a wrong secret', asBearer('nope')],
      ['the p2p secret', asBearer(P2P)],
      ['an account API key', asBearer(other.api_key)],
      ['the admin secret with a suffix', asBearer(`${ADMIN}x`)],
      ['the admin secret without the scheme', { authorization: ADMIN }],
      ['Basic auth', { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` }],
    ]
    for (const [what, headers] of credentials) {
      for (const [method, url, body] of adminRoutes) {
        const res = await inject(app, method, url.replace('ID', victim.account.id).replace('JTI', 'some-jti'), headers, body)
        assert.equal(res.statusCode, 401, `${what}: ${method} ${url}`)
        assert.deepEqual(res.json(), { error: 'Unauthorized', message: 'missing or invalid admin secret', statusCode: 401 })
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="pos-relay"')
      }
    }
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(JSON.stringify(await store.list()), snapshot)
    assert.equal(events.length, eventsBefore, 'no revocation published')
    assert.equal(await bus.isRevoked({ account: victim.account.id, jti: 'some-jti' }), false, 'neither the account nor the jti was revoked')
    assert.deepEqual(await sink.query({ from: new Date(Date.now() - 3600_000), to: new Date() }), [])
  })

  it('401 takes precedence over body errors', async () => {
    const { app, store } = await setup()
    for (const payload of ['{"name":', { name: 5 }, { name: 'a', tier: 'free', pad: 'x'.repeat(100_000) }]) {
      const res = await app.inject({ method: 'POST', url: '/api/admin/accounts', headers: { 'content-type': 'application/json', ...asBearer(P2P) }, payload: payload as string })
      assert.equal(res.statusCode, 401)
    }
    assert.deepEqual(await store.list(), [])
  })

  it('the admin secret does not work as the p2p secret', async () => {
    const { app, relays } = await setup()
    const reg = await app.inject({ method: 'POST', url: '/api/p2p/relays', headers: ADMIN_AUTH, payload: registration('relay-1') })
    assert.equal(reg.statusCode, 401)
    await relays.register(registration('keep'), 60_000)
    const del = await app.inject({ method: 'DELETE', url: '/api/p2p/relays/keep', headers: ADMIN_AUTH })
    assert.equal(del.statusCode, 401)
    assert.deepEqual((await relays.list()).map((r) => r.id), ['keep'])
    assert.equal((await app.inject({ method: 'POST', url: '/api/p2p/relays', headers: asBearer(P2P), payload: registration('relay-1') })).statusCode, 200)
  })
})

describe('tickets', () => {
  it('exchanges an API key for a ticket that relays verify with the published keys (over HTTP)', async () => {
    const { app } = await setup()
    const { account, api_key } = await createAccount(app, 'Acme', 'pro')
    const address = await app.listen({ host: '127.0.0.1', port: 0 })
    const res = await fetch(`${address}/api/p2p/tickets`, { method: 'POST', headers: { ...asBearer(api_key), 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: PEER_A_CID }) })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('cache-control'), 'no-store')
    const body = (await res.json()) as { ticket: string, expires_at: string, account: string, tier: string, jti: string }
    assert.deepEqual(Object.keys(body).sort(), ['account', 'expires_at', 'jti', 'ticket', 'tier'])
    assert.equal(body.account, account.id)
    assert.equal(body.tier, 'pro')

    const keys = await fetch(ticketKeysUrl(address))
    assert.equal(keys.status, 200)
    assert.match(keys.headers.get('cache-control') ?? '', /max-age/)
    const jwks = (await keys.json()) as { keys: { d?: string }[] }
    assert.deepEqual(jwks, issuer.jwks())
    assert.equal(jwks.keys.some((k) => 'd' in k), false)

    const verifier = new TicketVerifier({ jwksUrl: ticketKeysUrl(address) })
    const claims = await verifier.verify(body.ticket, PEER_A) // the CID form was normalised to base58
    assert.equal(claims.account, account.id)
    assert.equal(claims.tier, 'pro')
    assert.equal(claims.jti, body.jti)
    assert.equal(new Date(claims.exp * 1000).toISOString(), body.expires_at)
    await assert.rejects(verifier.verify(body.ticket, PEER_B), { reason: 'wrong_peer' })
  })

  it('401 for missing, wrong, disabled, rotated-away, admin and p2p credentials', async () => {
    const { app, store } = await setup()
    const live = await createAccount(app)
    const disabled = await createAccount(app, 'disabled')
    await store.disable(disabled.account.id)
    const rotatedAway = await createAccount(app, 'rotated')
    await store.rotateKey(rotatedAway.account.id)
    const cases: [string, Record<string, string>][] = [
      ['no header', {}],
      ['a garbage key', asBearer('pra_nope')],
      ['a wrong secret for a real key id', asBearer(live.api_key.slice(0, -2) + (live.api_key.endsWith('AA') ? 'BB' : 'AA'))],
      ['a disabled account', asBearer(disabled.api_key)],
      ['a rotated-away key', asBearer(rotatedAway.api_key)],
      ['the admin secret', ADMIN_AUTH],
      ['the p2p secret', asBearer(P2P)],
      ['the key without the scheme', { authorization: live.api_key }],
    ]
    for (const [what, headers] of cases) {
      const res = await inject(app, 'POST', '/api/p2p/tickets', headers, { peer_id: PEER_A })
      assert.equal(res.statusCode, 401, what)
      assert.deepEqual(res.json(), { error: 'Unauthorized', message: 'missing or invalid API key', statusCode: 401 })
    }
    // 401 before the body is looked at
    const res = await app.inject({ method: 'POST', url: '/api/p2p/tickets', headers: { 'content-type': 'application/json', ...asBearer('x') }, payload: '{' })
    assert.equal(res.statusCode, 401)
  })

  const badPeers: [string, unknown, string | undefined][] = [
    ['a non-peer-id string', { peer_id: 'QmNotAPeerId' }, 'peer_id'],
    ['a number', { peer_id: 5 }, 'peer_id'],
    ['a missing peer_id', {}, 'peer_id'],
    ['an extra key', { peer_id: PEER_A, account: 'acc_x' }, 'account'],
    ['a multiaddr', { peer_id: `/p2p/${PEER_A}` }, 'peer_id'],
  ]
  for (const [name, body, field] of badPeers) {
    it(`400 for ${name}`, async () => {
      const { app } = await setup()
      const { api_key } = await createAccount(app)
      const res = await inject(app, 'POST', '/api/p2p/tickets', asBearer(api_key), body)
      assert.equal(res.statusCode, 400, res.body)
      assert.equal(res.json().field, field)
    })
  }

  it('403 when the account tier is not configured', async () => {
    const { app, store } = await setup()
    const { api_key } = await store.create({ name: 'legacy', tier: 'gold' })
    const res = await ticket(app, api_key)
    assert.equal(res.statusCode, 403)
    assert.match(res.json().message, /"gold" is not configured/)
  })

  it('counts ticket requests by result in the metrics, never by account', async () => {
    const { app, store } = await setup()
    const { account, api_key } = await createAccount(app)
    await ticket(app, api_key)
    await ticket(app, 'pra_bad')
    await ticket(app, api_key, 'bad')
    await ticket(app, (await store.create({ name: 'legacy', tier: 'gold' })).api_key)
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
    for (const line of ['ok"} 1', 'unauthorized"} 1', 'tier_unknown"} 1', 'throttled"} 0', 'invalid"} 1', 'unavailable"} 0']) {
      assert.ok(text.includes(`pos_relay_discovery_ticket_requests_total{result="${line}`), line)
    }
    assert.equal(text.includes(account.id), false)
  })
})

describe('revocation and usage', () => {
  it('revokes a ticket on every relay bus', async () => {
    const { app, events, bus } = await setup()
    const { api_key } = await createAccount(app)
    const { jti } = (await ticket(app, api_key)).json()
    const res = await inject(app, 'POST', `/api/admin/tickets/${jti}/revoke`)
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { jti, revoked: true })
    await waitFor(() => events.some((e) => e.kind === 'ticket' && e.id === jti), { timeoutMs: 5000 })
    assert.equal(await bus.isRevoked({ account: 'acc_other', jti }), true)
    const bad = await inject(app, 'POST', '/api/admin/tickets/bad%20jti/revoke')
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().field, 'jti')
  })

  it('serves usage as JSON and CSV, filtered by account and range', async () => {
    const { app, sink } = await setup()
    const meter = new UsageMeter({ sink, relayId: 'r1' })
    const h = Date.parse('2030-01-01T10:00:00.000Z')
    meter.add('acc_aaaaaaaaaaaaaaaa', { bytes_to_destination: 100, bytes_to_source: 50, circuits: 2, circuit_seconds: 1.5 }, new Date(h))
    meter.add('acc_bbbbbbbbbbbbbbbb', { reservation_seconds: 30 }, new Date(h + 3600_000))
    await meter.flush()
    const from = '2030-01-01T10:00:00Z'
    const to = '2030-01-01T12:00:00.000Z'
    const all = await inject(app, 'GET', `/api/admin/usage?from=${from}&to=${to}`)
    assert.equal(all.statusCode, 200, all.body)
    assert.deepEqual(all.json(), [
      { account: 'acc_aaaaaaaaaaaaaaaa', hour: '2030-01-01T10:00:00.000Z', bytes_to_destination: 100, bytes_to_source: 50, circuits: 2, circuit_seconds: 1.5, reservation_seconds: 0 },
      { account: 'acc_bbbbbbbbbbbbbbbb', hour: '2030-01-01T11:00:00.000Z', bytes_to_destination: 0, bytes_to_source: 0, circuits: 0, circuit_seconds: 0, reservation_seconds: 30 },
    ])
    const one = await inject(app, 'GET', `/api/admin/usage?account=acc_bbbbbbbbbbbbbbbb&from=${from}&to=${to}&format=json`)
    assert.equal(one.json().length, 1)
    const csv = await inject(app, 'GET', `/api/admin/usage?from=${from}&to=${to}&format=csv`)
    assert.equal(csv.statusCode, 200)
    assert.match(csv.headers['content-type'] as string, /^text\/csv/)
    assert.equal(csv.body.split('\n')[0], 'account,hour,bytes_to_destination,bytes_to_source,circuits,circuit_seconds,reservation_seconds')
    assert.equal(csv.body.split('\n')[1], 'acc_aaaaaaaaaaaaaaaa,2030-01-01T10:00:00.000Z,100,50,2,1.5,0')
    const empty = await inject(app, 'GET', '/api/admin/usage')
    assert.equal(empty.statusCode, 200)
    assert.deepEqual(empty.json(), [], 'defaults to the current month')

    for (const [query, field] of [
      ['from=yesterday', 'from'],
      ['to=2030-13-01T00:00:00Z', 'to'],
      ['format=xml', 'format'],
      ['account=bad%20id', 'account'],
      ['unknown=1', 'unknown'],
      [`from=${to}&to=${from}`, undefined],
      ['from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z', undefined],
    ] as const) {
      const res = await inject(app, 'GET', `/api/admin/usage?${query}`)
      assert.equal(res.statusCode, 400, `${query}: ${res.body}`)
      assert.equal(res.json().field, field, query)
    }
  })
})

describe('accounts Redis outage', () => {
  it('503 for tickets and admin routes while Redis is down, service again afterwards', async () => {
    const own = await startRedis()
    try {
      const { app } = await setup({ url: own.url })
      const { api_key } = await createAccount(app)
      await own.kill()
      for (const [method, url, headers, body] of [
        ['POST', '/api/p2p/tickets', asBearer(api_key), { peer_id: PEER_A }],
        ['GET', '/api/admin/accounts', ADMIN_AUTH, undefined],
        ['POST', '/api/admin/accounts', ADMIN_AUTH, { name: 'x', tier: 'free' }],
        ['GET', '/api/admin/usage', ADMIN_AUTH, undefined],
      ] as const) {
        const started = Date.now()
        const res = await inject(app, method, url, headers, body)
        assert.equal(res.statusCode, 503, `${method} ${url}: ${res.body}`)
        assert.deepEqual(res.json(), { error: 'Service Unavailable', message: 'accounts store (Redis) is unreachable', statusCode: 503 })
        assert.ok(Date.now() - started < 3000)
      }
      // the key set needs no Redis
      assert.equal((await inject(app, 'GET', '/api/p2p/ticket-keys', {})).statusCode, 200)
      await own.restart()
      await waitFor(async () => (await inject(app, 'GET', '/api/admin/accounts')).statusCode === 200, { timeoutMs: 10_000 })
    } finally {
      await own.stop()
    }
  })
})

describe('logging', () => {
  it('never logs API keys, tickets or secrets', async () => {
    const lines: string[] = []
    const logger = pino({ level: 'trace', redact: ['req.headers.authorization'] }, { write: (line: string) => void lines.push(line) })
    const { app } = await setup({ logger })
    const { api_key, account } = await createAccount(app)
    const t = (await ticket(app, api_key)).json()
    await ticket(app, 'pra_wrong-key-123')
    await inject(app, 'GET', '/api/admin/accounts', asBearer('wrong-admin-xyz'))
    const rotated = (await inject(app, 'POST', `/api/admin/accounts/${account.id}/rotate-key`)).json()
    await inject(app, 'POST', `/api/admin/tickets/${t.jti}/revoke`)
    const all = lines.join('\n')
    assert.ok(lines.length > 8)
    assert.ok(all.includes('account created'))
    for (const secret of [api_key, rotated.api_key, t.ticket, t.ticket.split('.')[2] as string, ADMIN, P2P, 'pra_wrong-key-123', 'wrong-admin-xyz']) {
      assert.equal(all.includes(secret), false, `log leaks ${secret.slice(0, 12)}…`)
    }
  })
})
