import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, afterEach, before, describe, it } from 'node:test'
import { createDiscoveryServer, createRedisStore, type RelayStore } from '@pos-relay/discovery'
import { startRedis, waitFor, type RedisServer } from '@pos-relay/testing'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { pino } from 'pino'
import { PEER_A, PEER_A_CID, PEER_B, PEER_C, registration, sleep } from './fixtures.ts'

const SECRET = 'test-p2p-secret-7f3a9c'
const AUTH = { authorization: `Bearer ${SECRET}` }
const RELAYS = '/api/p2p/relays'

type ServerOptions = Partial<Parameters<typeof createDiscoveryServer>[0]>

let redis: RedisServer
const cleanups: (() => Promise<unknown>)[] = []

before(async () => {
  redis = await startRedis()
})
afterEach(async () => {
  // close servers before their stores
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
after(async () => {
  await redis?.stop()
})

/** A server on a fresh key prefix of `url` (default: the shared Redis). */
async function setup (opts: ServerOptions & { url?: string } = {}): Promise<{ app: FastifyInstance; store: RelayStore }> {
  const store = createRedisStore({ url: opts.url ?? redis.url, keyPrefix: `api-${randomUUID()}:` })
  cleanups.push(() => store.close())
  const app = await createDiscoveryServer({ store, p2pSecret: SECRET, logger: false, ...opts })
  cleanups.push(() => app.close())
  return { app, store }
}

const post = (app: FastifyInstance, payload: unknown, headers: Record<string, string> = AUTH) =>
  app.inject({ method: 'POST', url: RELAYS, headers, payload: payload as InjectOptions['payload'] })

const validBody = (id = 'relay-1') => ({
  id,
  peer_id: PEER_A,
  addrs: ['/ip4/203.0.113.7/tcp/4001', `/dns4/relay.example.com/tcp/443/wss/p2p/${PEER_A}`],
  meta: { region: 'eu-west' },
})

describe('registration and listing', () => {
  it('registers a relay and lists it with normalised addrs', async () => {
    const { app } = await setup()
    const res = await post(app, validBody())
    assert.equal(res.statusCode, 200, res.body)
    const body = res.json()
    assert.equal(body.id, 'relay-1')
    assert.equal(body.peer_id, PEER_A)
    assert.equal(body.ttl_seconds, 30)
    assert.ok(Math.abs(Date.parse(body.expires_at) - Date.now() - 30_000) < 2000, body.expires_at)

    const list = await app.inject({ method: 'GET', url: RELAYS })
    assert.equal(list.statusCode, 200)
    assert.match(list.headers['content-type'] as string, /^application\/json/)
    const relays = list.json()
    assert.equal(relays.length, 1)
    assert.deepEqual(relays[0].addrs, [
      `/ip4/203.0.113.7/tcp/4001/p2p/${PEER_A}`,
      `/dns4/relay.example.com/tcp/443/wss/p2p/${PEER_A}`,
    ])
    for (const addr of relays[0].addrs) assert.ok(addr.endsWith(`/p2p/${relays[0].peer_id}`))
    assert.deepEqual(relays[0].meta, { region: 'eu-west' })
    assert.equal(relays[0].expires_at, body.expires_at)
    assert.equal('ttl_seconds' in relays[0], false)
  })

  it('re-registering keeps registered_at and moves expires_at', async () => {
    const { app } = await setup()
    const first = (await post(app, validBody())).json()
    await sleep(20)
    const second = (await post(app, { ...validBody(), addrs: ['/ip4/198.51.100.1/tcp/4001'] })).json()
    assert.equal(second.registered_at, first.registered_at)
    assert.ok(Date.parse(second.expires_at) > Date.parse(first.expires_at))
    const relays = (await app.inject({ method: 'GET', url: RELAYS })).json()
    assert.deepEqual(
      relays.map((r: { addrs: string[] }) => r.addrs),
      [[`/ip4/198.51.100.1/tcp/4001/p2p/${PEER_A}`]]
    )
  })

  it('refresh_only: 404 naming id while the relay is not listed, storing nothing; refreshes once it is', async () => {
    const { app, store } = await setup()
    const absent = await post(app, { ...validBody(), refresh_only: true })
    assert.equal(absent.statusCode, 404, absent.body)
    assert.equal(absent.json().field, 'id')
    assert.match(absent.json().message, /relay id relay-1 is not listed/)
    assert.deepEqual(await store.list(), [])
    assert.equal((await post(app, validBody())).statusCode, 200)
    const refreshed = await post(app, { ...validBody(), refresh_only: true })
    assert.equal(refreshed.statusCode, 200, refreshed.body)
    assert.equal((await store.list()).length, 1)
    assert.equal((await post(app, { ...validBody(), refresh_only: 'yes' })).statusCode, 400)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^pos_relay_discovery_registrations_total\{result="not_listed"\} 1$/m)
  })

  it('409 when another peer id posts a live id, changing nothing (not even registered_at)', async () => {
    const { app, store } = await setup()
    assert.equal((await post(app, validBody())).statusCode, 200)
    const before = await store.list()
    await sleep(20)
    const res = await post(app, { ...validBody(), peer_id: PEER_B, addrs: ['/ip4/198.51.100.66/tcp/4001'] })
    assert.equal(res.statusCode, 409, res.body)
    assert.deepEqual(res.json(), {
      error: 'Conflict',
      message: `relay id relay-1 is registered by peer ${PEER_A}; another peer cannot take it over while it is live`,
      field: 'peer_id',
      statusCode: 409,
    })
    assert.deepEqual(await store.list(), before)
    // the owner's heartbeat still works
    const heartbeat = await post(app, validBody())
    assert.equal(heartbeat.statusCode, 200, heartbeat.body)
    assert.equal(heartbeat.json().registered_at, before[0]?.registered_at)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^pos_relay_discovery_registrations_total\{result="conflict"\} 1$/m)
  })

  it('normalises a CID-form peer id to base58 and drops duplicate addrs', async () => {
    const { app } = await setup()
    const res = await post(app, {
      id: 'cid',
      peer_id: PEER_A_CID,
      addrs: ['/ip4/203.0.113.7/tcp/4001', `/ip4/203.0.113.7/tcp/4001/p2p/${PEER_A}`],
    })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.json().peer_id, PEER_A)
    assert.deepEqual(res.json().addrs, [`/ip4/203.0.113.7/tcp/4001/p2p/${PEER_A}`])
  })

  it('an id of the longest allowed length (128) registers and deregisters; a longer one is a 400 naming id, not a 414', async () => {
    const { app, store } = await setup()
    const id = 'r'.repeat(128)
    assert.equal((await post(app, validBody(id))).statusCode, 200)
    const del = await app.inject({ method: 'DELETE', url: `${RELAYS}/${id}`, headers: AUTH })
    assert.equal(del.statusCode, 204, del.body)
    assert.deepEqual(await store.list(), [])
    const long = await app.inject({ method: 'DELETE', url: `${RELAYS}/${'r'.repeat(129)}`, headers: AUTH })
    assert.equal(long.statusCode, 400, long.body)
    assert.equal(long.json().field, 'id')
  })

  it('undeclared methods on declared paths answer 405 with Allow, in the error format; unknown paths 404 in it', async () => {
    const { app } = await setup()
    for (const [method, url, allow] of [['PUT', RELAYS, 'GET, HEAD, POST'], ['GET', `${RELAYS}/relay-1`, 'DELETE'], ['PATCH', '/healthz', 'GET, HEAD'], ['QUERY', RELAYS, 'GET, HEAD, POST']] as const) {
      const res = await app.inject({ method: method as InjectOptions['method'], url })
      assert.equal(res.statusCode, 405, `${method} ${url}: ${res.body}`)
      assert.equal(res.headers.allow, allow)
      assert.deepEqual(res.json(), { error: 'Method Not Allowed', message: `${method} is not allowed here; allowed: ${allow}`, statusCode: 405 })
    }
    const missing = await app.inject({ method: 'GET', url: '/api/p2p/nothing?x=1' })
    assert.equal(missing.statusCode, 404)
    assert.deepEqual(missing.json(), { error: 'Not Found', message: 'no route GET /api/p2p/nothing', statusCode: 404 })
  })

  it('an address that is not a relay multiaddr is refused with one message naming it', async () => {
    const { app } = await setup()
    const res = await post(app, { ...validBody('relay-1'), addrs: [''] })
    assert.equal(res.statusCode, 400)
    assert.equal(res.json().field, 'addrs.0')
    assert.match(res.json().message, /^addrs\.0: must be a multiaddr starting with \/ip4/)
    assert.doesNotMatch(res.json().message, /bare/)
  })

  it('DELETE removes a relay and is idempotent', async () => {
    const { app, store } = await setup()
    await post(app, validBody('relay-1'))
    await post(app, validBody('relay-2'))
    const del = await app.inject({ method: 'DELETE', url: `${RELAYS}/relay-1`, headers: AUTH })
    assert.equal(del.statusCode, 204)
    assert.equal(del.body, '')
    assert.deepEqual(
      (await store.list()).map((r) => r.id),
      ['relay-2']
    )
    const again = await app.inject({ method: 'DELETE', url: `${RELAYS}/relay-1`, headers: AUTH })
    assert.equal(again.statusCode, 204)
    const unknown = await app.inject({ method: 'DELETE', url: `${RELAYS}/never-seen`, headers: AUTH })
    assert.equal(unknown.statusCode, 204)
    const bad = await app.inject({ method: 'DELETE', url: `${RELAYS}/bad%20id`, headers: AUTH })
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().field, 'id')
    assert.deepEqual(
      (await store.list()).map((r) => r.id),
      ['relay-2']
    )
  })

  it('a relay registered with ttlSeconds 1 disappears from GET after about a second', async () => {
    const { app } = await setup({ ttlSeconds: 1 })
    const started = Date.now()
    const res = await post(app, validBody())
    assert.equal(res.json().ttl_seconds, 1)
    const ids = async () => (await app.inject({ method: 'GET', url: RELAYS })).json().map((r: { id: string }) => r.id)
    assert.deepEqual(await ids(), ['relay-1'])
    await waitFor(async () => (await ids()).length === 0, { timeoutMs: 2500, intervalMs: 25, message: 'relay did not expire' })
    const elapsed = Date.now() - started
    assert.ok(elapsed >= 900, `expired after only ${elapsed} ms`)
  })

  it('serves over real HTTP', async () => {
    const { app } = await setup()
    const address = await app.listen({ host: '127.0.0.1', port: 0 })
    const created = await fetch(`${address}${RELAYS}`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify(validBody('http-relay')),
    })
    assert.equal(created.status, 200)
    const res = await fetch(`${address}${RELAYS}`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
    const relays = (await res.json()) as { id: string }[]
    assert.deepEqual(
      relays.map((r) => r.id),
      ['http-relay']
    )
    const unauthorized = await fetch(`${address}${RELAYS}/http-relay`, { method: 'DELETE' })
    assert.equal(unauthorized.status, 401)
    assert.equal(unauthorized.headers.get('www-authenticate'), 'Bearer realm="pos-relay"')
  })
})

describe('authentication', () => {
  const badHeaders: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['wrong secret', { authorization: 'Bearer not-the-secret' }],
    ['secret with a suffix', { authorization: `Bearer ${SECRET}x` }],
    ['secret prefix only', { authorization: `Bearer ${SECRET.slice(0, -1)}` }],
    ['Bearer with an empty token', { authorization: 'Bearer ' }],
    ['bare Bearer', { authorization: 'Bearer' }],
    ['Basic scheme', { authorization: `Basic ${Buffer.from(`relay:${SECRET}`).toString('base64')}` }],
    ['secret without scheme', { authorization: SECRET }],
  ]

  for (const [name, headers] of badHeaders) {
    it(`401 for ${name}, storing nothing`, async () => {
      const { app, store } = await setup()
      await store.register(registration('existing'), 60_000)
      const snapshot = await store.list()
      for (const res of [
        await post(app, validBody(), headers),
        await app.inject({ method: 'DELETE', url: `${RELAYS}/existing`, headers }),
      ]) {
        assert.equal(res.statusCode, 401)
        assert.deepEqual(res.json(), { error: 'Unauthorized', message: 'missing or invalid bearer token', statusCode: 401 })
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="pos-relay"')
      }
      assert.deepEqual(await store.list(), snapshot)
    })
  }

  it('401 takes precedence over body errors for unauthenticated requests', async () => {
    const { app, store } = await setup()
    const headers = { authorization: 'Bearer nope' }
    const cases = [
      await app.inject({ method: 'POST', url: RELAYS, headers: { ...headers, 'content-type': 'application/json' }, payload: '{"id":' }),
      await app.inject({ method: 'POST', url: RELAYS, headers: { ...headers, 'content-type': 'text/plain' }, payload: 'hi' }),
      await post(app, { id: 42 }, headers),
      await post(app, { ...validBody(), pad: 'x'.repeat(100_000) }, headers),
    ]
    assert.deepEqual(
      cases.map((r) => r.statusCode),
      [401, 401, 401, 401]
    )
    assert.deepEqual(await store.list(), [])
  })

  it('accepts the scheme name case-insensitively', async () => {
    const { app } = await setup()
    const res = await post(app, validBody(), { authorization: `bearer ${SECRET}` })
    assert.equal(res.statusCode, 200, res.body)
  })
})

describe('throttling failed authentications', () => {
  it('answers 429 to a source IP after N failures a minute, even with the right secret; other IPs are unaffected', async () => {
    const { app, store } = await setup({ authFailuresPerMinute: 3 })
    const from = (remoteAddress: string, headers: Record<string, string>) =>
      app.inject({ method: 'POST', url: RELAYS, remoteAddress, headers, payload: validBody() })
    for (let i = 0; i < 3; i++) assert.equal((await from('198.51.100.9', { authorization: `Bearer guess-${i}` })).statusCode, 401)
    const throttled = await from('198.51.100.9', { authorization: 'Bearer guess-3' })
    assert.equal(throttled.statusCode, 429, throttled.body)
    assert.ok(Number(throttled.headers['retry-after']) >= 1 && Number(throttled.headers['retry-after']) <= 60, String(throttled.headers['retry-after']))
    assert.equal(throttled.json().error, 'Too Many Requests')
    assert.match(throttled.json().message, /too many failed authentications/)
    // the secret is not even compared while throttled, so guessing stops here
    assert.equal((await from('198.51.100.9', AUTH)).statusCode, 429)
    const del = await app.inject({ method: 'DELETE', url: `${RELAYS}/x`, remoteAddress: '198.51.100.9', headers: AUTH })
    assert.equal(del.statusCode, 429)
    assert.deepEqual(await store.list(), [])
    assert.equal((await from('198.51.100.10', AUTH)).statusCode, 200)
    // GET needs no authentication and is never throttled
    assert.equal((await app.inject({ method: 'GET', url: RELAYS, remoteAddress: '198.51.100.9' })).statusCode, 200)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^pos_relay_discovery_registrations_total\{result="throttled"\} 2$/m)
  })

  it('successful authentications do not count, and 0 turns throttling off', async () => {
    const counted = await setup({ authFailuresPerMinute: 2 })
    for (let i = 0; i < 5; i++) assert.equal((await post(counted.app, validBody())).statusCode, 200)
    const off = await setup({ authFailuresPerMinute: 0 })
    for (let i = 0; i < 70; i++) assert.equal((await post(off.app, validBody(), { authorization: 'Bearer nope' })).statusCode, 401)
  })
})

describe('validation', () => {
  const tooManyAddrs = Array.from({ length: 17 }, (_, i) => `/ip4/203.0.113.7/tcp/${4000 + i}`)
  const tooManyMeta = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']))
  // [name, body, field, message pattern]
  const cases: [string, unknown, string | undefined, RegExp][] = [
    ['id is a number', { ...validBody(), id: 42 }, 'id', /expected string/],
    ['id has forbidden characters', { ...validBody(), id: 'relay one' }, 'id', /letters, digits/],
    ['id is empty', { ...validBody(), id: '' }, 'id', /id:/],
    ['id is too long', { ...validBody(), id: 'r'.repeat(129) }, 'id', /id:/],
    ['addrs is a string', { ...validBody(), addrs: '/ip4/203.0.113.7/tcp/4001' }, 'addrs', /expected array/],
    ['addrs is missing', { id: 'relay-1', peer_id: PEER_A }, 'addrs', /addrs/],
    ['peer_id is missing', { id: 'relay-1', addrs: ['/ip4/203.0.113.7/tcp/4001'] }, 'peer_id', /peer_id/],
    ['addrs is empty', { ...validBody(), addrs: [] }, 'addrs', /addrs/],
    ['too many addrs', { ...validBody(), addrs: tooManyAddrs }, 'addrs', /addrs/],
    ['an addr is not a multiaddr', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', 'not-a-multiaddr'] }, 'addrs.1', /must be a multiaddr starting with \/ip4/],
    ['an addr has an invalid IPv4', { ...validBody(), addrs: ['/ip4/999.1.1.1/tcp/4001'] }, 'addrs.0', /not a valid multiaddr/],
    ['an addr is an integer', { ...validBody(), addrs: [4001] }, 'addrs.0', /expected string/],
    ['an addr is a circuit address', { ...validBody(), addrs: [`/ip4/203.0.113.7/tcp/4001/p2p/${PEER_B}/p2p-circuit`] }, 'addrs.0', /p2p-circuit/],
    ['an addr is a bare /p2p', { ...validBody(), addrs: [`/p2p/${PEER_A}`] }, 'addrs.0', /must be a multiaddr starting with \/ip4/],
    ['an addr has no transport', { ...validBody(), addrs: ['/ip4/203.0.113.7'] }, 'addrs.0', /host and a transport/],
    ['an addr belongs to another peer', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', `/ip4/203.0.113.7/tcp/4002/p2p/${PEER_B}`] }, 'addrs.1', new RegExp(PEER_B)],
    ['an addr is the cloud metadata endpoint', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', '/ip4/169.254.169.254/tcp/80'] }, 'addrs.1', /169\.254\.169\.254 is a link-local address/],
    ['an addr is IPv4 link-local mapped into IPv6', { ...validBody(), addrs: ['/ip6/::ffff:169.254.169.254/tcp/80'] }, 'addrs.0', /link-local/],
    ['an addr is 0.0.0.0', { ...validBody(), addrs: ['/ip4/0.0.0.0/tcp/4001'] }, 'addrs.0', /unspecified/],
    ['an addr is ::', { ...validBody(), addrs: ['/ip6/::/tcp/4001'] }, 'addrs.0', /unspecified/],
    ['an addr is IPv6 link-local', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', '/ip4/203.0.113.8/tcp/4001', '/ip6/fe80::1/tcp/4001'] }, 'addrs.2', /link-local/],
    ['an addr is IPv4 multicast', { ...validBody(), addrs: ['/ip4/239.1.2.3/tcp/4001'] }, 'addrs.0', /multicast/],
    ['an addr is IPv6 multicast', { ...validBody(), addrs: ['/ip6/ff02::1/tcp/4001'] }, 'addrs.0', /multicast/],
    ['an addr is the broadcast address', { ...validBody(), addrs: ['/ip4/255.255.255.255/tcp/4001'] }, 'addrs.0', /broadcast/],
    ['an addr is plain UDP', { ...validBody(), addrs: ['/ip4/203.0.113.7/udp/53'] }, 'addrs.0', /UDP other than \/quic-v1/],
    ['an addr is QUIC draft-29', { ...validBody(), addrs: ['/ip4/203.0.113.7/udp/4001/quic'] }, 'addrs.0', /UDP other than \/quic-v1/],
    ['an addr has port 0', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/0'] }, 'addrs.0', /port 0/],
    ['peer_id is not a PeerId', { ...validBody(), peer_id: 'QmNotAPeerId' }, 'peer_id', /not a valid libp2p PeerId/],
    ['peer_id is a number', { ...validBody(), peer_id: 7 }, 'peer_id', /expected string/],
    ['an unknown top-level key', { ...validBody(), ttl: 9999 }, 'ttl', /Unrecognized key/],
    ['meta has too many entries', { ...validBody(), meta: tooManyMeta }, 'meta', /at most 16/],
    ['a meta value is not a string', { ...validBody(), meta: { region: 1 } }, 'meta.region', /expected string/],
    ['a meta value is too long', { ...validBody(), meta: { region: 'x'.repeat(257) } }, 'meta.region', /meta.region/],
    ['the body is a JSON array', [validBody()], undefined, /expected object/],
  ]

  for (const [name, body, field, message] of cases) {
    it(`400 when ${name}, storing nothing`, async () => {
      const { app, store } = await setup()
      await store.register(registration('relay-1', PEER_C), 60_000) // same id as the bad request
      const snapshot = await store.list()
      const res = await post(app, body)
      assert.equal(res.statusCode, 400, res.body)
      const error = res.json()
      assert.equal(error.error, 'Bad Request')
      assert.equal(error.statusCode, 400)
      assert.equal(error.field, field)
      assert.match(error.message, message)
      assert.deepEqual(await store.list(), snapshot)
    })
  }

  const transportCases: [string, InjectOptions, number, RegExp][] = [
    ['malformed JSON', { headers: { 'content-type': 'application/json' }, payload: '{"id": "relay-1", ' }, 400, /not valid JSON/],
    ['an empty JSON body', { headers: { 'content-type': 'application/json' }, payload: '' }, 400, /body/],
    ['text/plain', { headers: { 'content-type': 'text/plain' }, payload: JSON.stringify(validBody()) }, 415, /content type/],
    ['a form body', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'id=relay-1' }, 415, /content type/],
    ['a body over 64 KiB', { payload: { ...validBody(), meta: { pad: 'x'.repeat(256) }, extra: 'x'.repeat(70_000) } }, 413, /65536 bytes/],
  ]

  for (const [name, opts, status, message] of transportCases) {
    it(`${status} for ${name}, storing nothing`, async () => {
      const { app, store } = await setup()
      const res = await app.inject({ method: 'POST', url: RELAYS, ...opts, headers: { ...AUTH, ...opts.headers } })
      assert.equal(res.statusCode, status, res.body)
      const error = res.json()
      assert.equal(error.statusCode, status)
      assert.equal(typeof error.error, 'string')
      assert.equal(error.field, undefined)
      assert.match(error.message, message)
      assert.deepEqual(await store.list(), [])
    })
  }

  it('accepts loopback, private and QUIC v1 addrs by default', async () => {
    const { app } = await setup()
    const addrs = ['/ip4/127.0.0.1/tcp/7373', '/ip4/10.0.0.5/tcp/7373', '/ip4/192.168.1.5/udp/7373/quic-v1', '/ip6/::1/tcp/7373', '/dns4/localhost/tcp/7373']
    const res = await post(app, { ...validBody(), addrs })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.json().addrs.length, 5)
  })

  it('refuses loopback and private addrs with publicAddressesOnly, storing nothing', async () => {
    const { app, store } = await setup({ publicAddressesOnly: true })
    for (const [addr, what] of [
      ['/ip4/127.0.0.1/tcp/7373', /loopback/],
      ['/ip4/10.0.0.5/tcp/7373', /private/],
      ['/ip4/172.20.0.5/tcp/7373', /private/],
      ['/ip4/192.168.1.5/udp/7373/quic-v1', /private/],
      ['/ip4/100.64.0.1/tcp/7373', /private/],
      ['/ip6/::1/tcp/7373', /loopback/],
      ['/ip6/fd00::1/tcp/7373', /private/],
      ['/dns4/localhost/tcp/7373', /loopback/],
    ] as const) {
      const res = await post(app, { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', addr] })
      assert.equal(res.statusCode, 400, `${addr}: ${res.body}`)
      assert.equal(res.json().field, 'addrs.1')
      assert.match(res.json().message, what)
      assert.match(res.json().message, /public-addresses-only/)
    }
    assert.deepEqual(await store.list(), [])
    assert.equal((await post(app, validBody())).statusCode, 200)
  })

  it('honours bodyLimitBytes', async () => {
    const { app, store } = await setup({ bodyLimitBytes: 1024 })
    const small = await post(app, validBody())
    assert.equal(small.statusCode, 200)
    const big = await post(app, { ...validBody('relay-2'), meta: { a: 'x'.repeat(200), b: 'x'.repeat(200), c: 'x'.repeat(200), d: 'x'.repeat(200) } })
    assert.equal(big.statusCode, 413)
    assert.equal(big.json().error, 'Payload Too Large')
    assert.deepEqual(
      (await store.list()).map((r) => r.id),
      ['relay-1']
    )
  })
})

describe('Redis outage', () => {
  let own: RedisServer
  after(async () => {
    await own?.stop()
  })

  it('answers 503 quickly while Redis is down and recovers without a restart', async () => {
    own = await startRedis()
    const { app } = await setup({ url: own.url })
    assert.equal((await post(app, validBody('before'))).statusCode, 200)

    await own.kill()
    const requests: [string, InjectOptions][] = [
      ['GET list', { method: 'GET', url: RELAYS }],
      ['POST', { method: 'POST', url: RELAYS, headers: AUTH, payload: validBody('during') }],
      ['DELETE', { method: 'DELETE', url: `${RELAYS}/before`, headers: AUTH }],
      ['readyz', { method: 'GET', url: '/readyz' }],
    ]
    for (const [name, req] of requests) {
      const started = Date.now()
      const res = await app.inject(req)
      const took = Date.now() - started
      assert.equal(res.statusCode, 503, `${name}: ${res.body}`)
      assert.deepEqual(res.json(), { error: 'Service Unavailable', message: 'relay registry (Redis) is unreachable', statusCode: 503 })
      assert.ok(took < 2000, `${name} took ${took} ms`)
    }
    // Liveness and metrics do not depend on Redis.
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^pos_relay_discovery_store_up 0$/m)
    assert.match(metrics, /^pos_relay_discovery_registrations_total\{result="unavailable"\} 1$/m)

    await own.restart()
    await waitFor(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, {
      timeoutMs: 10_000,
      message: 'discovery never became ready again',
    })
    const res = await post(app, validBody('after'))
    assert.equal(res.statusCode, 200, res.body)
    const list = await app.inject({ method: 'GET', url: RELAYS })
    assert.deepEqual(
      list.json().map((r: { id: string }) => r.id),
      ['after']
    )
  })
})

describe('operational endpoints', () => {
  it('healthz and readyz', async () => {
    const { app } = await setup()
    const health = await app.inject({ method: 'GET', url: '/healthz' })
    assert.equal(health.statusCode, 200)
    assert.deepEqual(health.json(), { status: 'ok' })
    const ready = await app.inject({ method: 'GET', url: '/readyz' })
    assert.equal(ready.statusCode, 200)
    assert.deepEqual(ready.json(), { status: 'ready' })
  })

  it('exposes Prometheus metrics with bounded labels and no relay identifiers', async () => {
    const { app } = await setup()
    const id = 'relay-metrics-canary'
    assert.equal((await post(app, { ...validBody(id), peer_id: PEER_B, addrs: ['/ip4/203.0.113.9/tcp/4001'] })).statusCode, 200)
    assert.equal((await post(app, validBody(), {})).statusCode, 401)
    assert.equal((await post(app, { ...validBody(), id: 1 })).statusCode, 400)
    await app.inject({ method: 'GET', url: RELAYS })
    await app.inject({ method: 'DELETE', url: `${RELAYS}/another-canary-id`, headers: AUTH })

    const res = await app.inject({ method: 'GET', url: '/metrics' })
    assert.equal(res.statusCode, 200)
    assert.match(res.headers['content-type'] as string, /^text\/plain/)
    const text = res.body
    for (const line of [
      'pos_relay_discovery_http_requests_total{route="/api/p2p/relays",method="POST",status_code="200"} 1',
      'pos_relay_discovery_http_requests_total{route="/api/p2p/relays/:id",method="DELETE",status_code="204"} 1',
      'pos_relay_discovery_registrations_total{result="ok"} 1',
      'pos_relay_discovery_registrations_total{result="unauthorized"} 1',
      'pos_relay_discovery_registrations_total{result="invalid"} 1',
      'pos_relay_discovery_registrations_total{result="unavailable"} 0',
      'pos_relay_discovery_relays_listed 1',
      'pos_relay_discovery_store_up 1',
    ]) {
      assert.ok(text.split('\n').includes(line), `missing metric line: ${line}`)
    }
    assert.match(text, /^pos_relay_discovery_http_request_duration_seconds_bucket\{le="0\.005",route="\/api\/p2p\/relays",method="GET",status_code="200"\} \d+$/m)
    assert.match(text, /^pos_relay_discovery_process_cpu_user_seconds_total /m)
    for (const secretish of [id, PEER_B, 'another-canary-id', SECRET]) {
      assert.equal(text.includes(secretish), false, `metrics leak ${secretish}`)
    }
  })

  it('keeps metrics per server (no global registry)', async () => {
    const a = await setup()
    const b = await setup()
    await a.app.inject({ method: 'GET', url: RELAYS })
    const metricsB = (await b.app.inject({ method: 'GET', url: '/metrics' })).body
    assert.doesNotMatch(metricsB, /route="\/api\/p2p\/relays",method="GET"/)
  })

  it('serves an OpenAPI document generated from the schemas', async () => {
    const { app } = await setup()
    const res = await app.inject({ method: 'GET', url: '/openapi.json' })
    assert.equal(res.statusCode, 200)
    const doc = res.json()
    assert.match(doc.openapi, /^3\.\d+\.\d+$/)
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, {
      type: 'http',
      scheme: 'bearer',
      description: "The relays' shared P2P secret",
    })
    const relays = doc.paths['/api/p2p/relays']
    assert.ok(relays.get.responses['200'])
    assert.equal(relays.get.security, undefined)
    assert.deepEqual(relays.post.security, [{ bearerAuth: [] }])
    const body = relays.post.requestBody.content['application/json'].schema
    assert.deepEqual(body.required, ['id', 'peer_id', 'addrs'])
    assert.equal(body.additionalProperties, false)
    assert.equal(body.properties.addrs.maxItems, 16)
    assert.match(body.properties.addrs.description, /link-local/)
    assert.match(body.properties.addrs.description, /--public-addresses-only/)
    assert.ok(relays.post.responses['409'])
    assert.equal(body.properties.id.pattern, '^[A-Za-z0-9._:-]+$')
    const del = doc.paths['/api/p2p/relays/{id}'].delete
    assert.deepEqual(del.security, [{ bearerAuth: [] }])
    assert.ok(del.responses['204'])
    assert.equal(del.parameters[0].name, 'id')
    assert.equal(doc.paths['/metrics'], undefined)
  })

  it('logs structured JSON without the secret or the Authorization header', async () => {
    const lines: string[] = []
    const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) })
    const { app } = await setup({ logger })
    const wrong = 'wrong-token-5d1e'
    await post(app, validBody())
    await post(app, validBody(), { authorization: `Bearer ${wrong}` })
    await app.inject({ method: 'DELETE', url: `${RELAYS}/relay-1`, headers: AUTH })
    await app.inject({ method: 'GET', url: RELAYS })
    assert.ok(lines.length >= 4, `only ${lines.length} log lines`)
    const entries = lines.map((l) => JSON.parse(l) as { msg?: string })
    assert.ok(entries.some((e) => e.msg === 'relay registered'))
    assert.ok(entries.some((e) => e.msg === 'unauthorized request'))
    const all = lines.join('\n')
    assert.equal(all.includes(SECRET), false, 'secret leaked into logs')
    assert.equal(all.includes(wrong), false, 'presented token leaked into logs')
    assert.equal(/authorization/i.test(all), false, 'Authorization header logged')
  })

  it('refuses to start without a secret', async () => {
    await assert.rejects(setup({ p2pSecret: '' }), /p2pSecret/)
  })
})
