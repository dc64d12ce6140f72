import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { after, describe, it } from 'node:test'
import { Redis } from 'ioredis'
import { createDiscoveryServer, createRedisStore, createRelayListCache, negotiateEncoding, type RelayStore } from '@pos-relay/discovery'
import { rankRelays } from '@pos-relay/shared'
import { useRedis } from '@pos-relay/testing'
import { PEER_A, PEER_B, PEER_C, registration, sleep } from './fixtures.ts'

const RELAYS = '/api/p2p/relays'
const cleanups: (() => Promise<unknown>)[] = []
// declared before useRedis: hooks run in declaration order, so these run before Redis stops
after(async () => {
  for (const c of cleanups.reverse()) await c()
})
const redis = useRedis()

function store (): RelayStore {
  const s = createRedisStore({ url: redis.url, keyPrefix: `list-${randomUUID()}:` })
  cleanups.push(() => s.close())
  return s
}

/** Commands Redis has run, from INFO commandstats (the list is one EVALSHA per read). */
async function commandsRun (client: Redis): Promise<number> {
  const info = await client.info('commandstats')
  return [...info.matchAll(/calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0)
}

describe('the shared relay list (Redis store)', () => {
  it('is read at most once per max age, and a removed relay leaves every answer once that age has passed', async () => {
    const s = store()
    let now = 1_000_000
    const cache = createRelayListCache({ store: s, maxAgeMs: 1000, now: () => now })
    await s.register(registration('r1', PEER_A), 60_000)
    await s.register(registration('r2', PEER_B), 60_000)
    const first = await cache.get()
    assert.deepEqual(first.relays.map((r) => r.id), ['r1', 'r2'])
    await s.deregister('r1')
    now += 999
    assert.equal(await cache.get(), first, 'within the max age the snapshot is shared')
    now += 1
    assert.deepEqual((await cache.get()).relays.map((r) => r.id), ['r2'], 'a list read 1000 ms before the request is not served')
  })

  it('concurrent requests share one read', async () => {
    let reads = 0
    const s = store()
    await s.register(registration('r1', PEER_A), 60_000)
    const counting = { list: async () => { reads++; return await s.list() } }
    const cache = createRelayListCache({ store: counting })
    const snapshots = await Promise.all(Array.from({ length: 50 }, async () => await cache.get()))
    assert.equal(reads, 1)
    assert.ok(snapshots.every((x) => x === snapshots[0]))
  })

  it('Redis commands do not grow with the number of requests', async () => {
    const s = store()
    const app = await createDiscoveryServer({ store: s, p2pSecret: 'unused-secret', logger: false })
    cleanups.push(() => app.close())
    await s.register(registration('r1', PEER_A), 60_000)
    const client = new Redis(redis.url)
    cleanups.push(async () => client.quit())
    await app.inject({ method: 'GET', url: RELAYS }) // prime
    const before = await commandsRun(client)
    for (let i = 0; i < 300; i++) {
      const res = await app.inject({ method: 'GET', url: i % 2 === 0 ? RELAYS : `${RELAYS}?for=${PEER_C}` })
      assert.equal(res.statusCode, 200)
    }
    // our own INFO call counts once; the 300 requests take at most one read per elapsed second
    // (each read is one EVALSHA), and on a slow machine a few more, never one per request
    const ran = (await commandsRun(client)) - before
    assert.ok(ran < 30, `${ran} Redis commands for 300 requests`)
  })

  it('ETag and If-None-Match give a 304 without a body; Cache-Control no-cache; br and gzip negotiated', async () => {
    const s = store()
    const app = await createDiscoveryServer({ store: s, p2pSecret: 'unused-secret', logger: false, listMaxAgeMs: 0 })
    cleanups.push(() => app.close())
    await s.register(registration('r1', PEER_A), 60_000)
    const full = await app.inject({ method: 'GET', url: RELAYS })
    assert.equal(full.headers['cache-control'], 'no-cache')
    assert.equal(full.headers.vary, 'accept-encoding')
    const etag = full.headers.etag as string
    assert.match(etag, /^W\/"[A-Za-z0-9_-]+"$/)
    const same = await app.inject({ method: 'GET', url: RELAYS, headers: { 'if-none-match': etag } })
    assert.equal(same.statusCode, 304)
    assert.equal(same.body, '')
    // a 304 announcing a body (it once said content-length 4, "null") stalls HTTP clients waiting for it
    assert.ok([undefined, '0'].includes(same.headers['content-length'] as string | undefined), `content-length ${same.headers['content-length']}`)
    assert.equal(same.headers.etag, etag)
    const br = await app.inject({ method: 'GET', url: RELAYS, headers: { 'accept-encoding': 'gzip, br' } })
    assert.equal(br.headers['content-encoding'], 'br')
    assert.equal(brotliDecompressSync(br.rawPayload).toString(), full.body)
    const gz = await app.inject({ method: 'GET', url: RELAYS, headers: { 'accept-encoding': 'gzip;q=0.5, br;q=0' } })
    assert.equal(gz.headers['content-encoding'], 'gzip')
    assert.equal(gunzipSync(gz.rawPayload).toString(), full.body)
    await s.register(registration('r2', PEER_B), 60_000)
    const changed = await app.inject({ method: 'GET', url: RELAYS, headers: { 'if-none-match': etag } })
    assert.equal(changed.statusCode, 200)
    assert.notEqual(changed.headers.etag, etag)
    assert.equal(changed.json().length, 2)
  })

  it('heartbeats alone keep the ETag (304); an addr change or a relay leaving changes it', async () => {
    const s = store()
    const app = await createDiscoveryServer({ store: s, p2pSecret: 'unused-secret', logger: false, listMaxAgeMs: 0 })
    cleanups.push(() => app.close())
    await s.register(registration('r1', PEER_A), 60_000)
    await s.register(registration('r2', PEER_B), 60_000)
    const first = await app.inject({ method: 'GET', url: RELAYS })
    const etag = first.headers.etag as string
    // heartbeats: the same registrations again, later (updated_at and expires_at move)
    await sleep(5)
    await s.register(registration('r1', PEER_A), 60_000)
    await s.register(registration('r2', PEER_B), 60_000)
    const beat = await app.inject({ method: 'GET', url: RELAYS })
    assert.notEqual(beat.body, first.body, 'the heartbeat moved the timestamps in the document')
    assert.equal(beat.headers.etag, etag, 'timestamps are not what clients use: same ETag')
    assert.equal((await app.inject({ method: 'GET', url: RELAYS, headers: { 'if-none-match': etag } })).statusCode, 304)
    // a new addr for r2: clients would dial differently
    await s.register(registration('r2', PEER_B, 4002), 60_000)
    const moved = await app.inject({ method: 'GET', url: RELAYS, headers: { 'if-none-match': etag } })
    assert.equal(moved.statusCode, 200)
    const movedTag = moved.headers.etag as string
    assert.notEqual(movedTag, etag)
    await s.deregister('r1')
    const left = await app.inject({ method: 'GET', url: RELAYS, headers: { 'if-none-match': movedTag } })
    assert.equal(left.statusCode, 200)
    assert.deepEqual(left.json().map((r: { id: string }) => r.id), ['r2'])
  })

  it('?for=<peer id>&count=N answers the N relays ranked for that peer by the shared rule; count 1-16, default 3', async () => {
    const s = store()
    const app = await createDiscoveryServer({ store: s, p2pSecret: 'unused-secret', logger: false, listMaxAgeMs: 0 })
    cleanups.push(() => app.close())
    const peers = [PEER_A, PEER_B, PEER_C]
    for (let i = 0; i < 20; i++) await s.register(registration(`r${i}`, peers[i % 3], 4000 + i), 60_000)
    const all = await s.list()
    for (const key of peers) {
      const expected = rankRelays(all, key).map((r) => r.id)
      const three = await app.inject({ method: 'GET', url: `${RELAYS}?for=${key}` })
      assert.equal(three.statusCode, 200)
      assert.deepEqual(three.json().map((r: { id: string }) => r.id), expected.slice(0, 3))
      const sixteen = await app.inject({ method: 'GET', url: `${RELAYS}?for=${key}&count=16&unknown=1` })
      assert.deepEqual(sixteen.json().map((r: { id: string }) => r.id), expected.slice(0, 16))
    }
    for (const bad of ['count=0', 'count=17', 'count=x', 'for=not-a-peer-id']) {
      const res = await app.inject({ method: 'GET', url: `${RELAYS}?for=${PEER_A}&${bad}` })
      assert.equal(res.statusCode, 400, bad)
    }
  })

  it('negotiates br, then gzip, honouring q=0', () => {
    assert.equal(negotiateEncoding(undefined), 'identity')
    assert.equal(negotiateEncoding('gzip, deflate, br'), 'br')
    assert.equal(negotiateEncoding('br;q=0, gzip'), 'gzip')
    assert.equal(negotiateEncoding('*'), 'br')
    assert.equal(negotiateEncoding('identity'), 'identity')
  })
})
