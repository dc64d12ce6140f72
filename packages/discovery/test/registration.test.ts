import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { waitFor } from '@pos-relay/testing'
import type { InjectOptions } from 'fastify'
import { listedIds, PEER_A, PEER_A_CID, PEER_B, sleep } from './fixtures.ts'
import { AUTH, post, RELAYS, setup, validBody } from './relay-api.ts'

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
    assert.deepEqual(await listedIds(store), ['relay-2'])
    const again = await app.inject({ method: 'DELETE', url: `${RELAYS}/relay-1`, headers: AUTH })
    assert.equal(again.statusCode, 204)
    const unknown = await app.inject({ method: 'DELETE', url: `${RELAYS}/never-seen`, headers: AUTH })
    assert.equal(unknown.statusCode, 204)
    const bad = await app.inject({ method: 'DELETE', url: `${RELAYS}/bad%20id`, headers: AUTH })
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().field, 'id')
    assert.deepEqual(await listedIds(store), ['relay-2'])
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
