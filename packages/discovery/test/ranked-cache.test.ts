import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { createDiscoveryServer, createMemoryStore, createRankedCache } from '@pos-relay/discovery'
import { rankRelays } from '@pos-relay/shared'
import { PEER_A, PEER_B, PEER_C, registration, sleep } from './fixtures.ts'

const RELAYS = '/api/p2p/relays'
const cleanups: (() => Promise<unknown>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

const relay = (id: string, peerId: string, updatedAt = 't0') => ({ id, peer_id: peerId, updated_at: updatedAt })
const many = Array.from({ length: 40 }, (_, i) => relay(`r${i}`, `peer-${i}`))

describe('the ?for= answer cache', () => {
  it('answers what ranking the snapshot gives, counts hits, and keeps at most maxEntries', () => {
    const lookups: boolean[] = []
    const cache = createRankedCache<ReturnType<typeof relay>>({ maxEntries: 2, onLookup: (hit) => lookups.push(hit) })
    const snapshot = { etag: 'W/"v1"', relays: many }
    for (const key of ['a', 'b', 'a']) assert.deepEqual(cache.get(snapshot, key, 3), rankRelays(many, key).slice(0, 3))
    assert.deepEqual(lookups, [false, false, true])
    // the count is part of the key
    assert.deepEqual(cache.get(snapshot, 'a', 5), rankRelays(many, 'a').slice(0, 5))
    assert.equal(lookups.at(-1), false)
    assert.equal(cache.size(), 2)
    // least recently used went first: 'b' (3) was dropped for 'a' (5); 'a' (3) was used after 'b'
    lookups.length = 0
    cache.get(snapshot, 'a', 3)
    cache.get(snapshot, 'b', 3)
    assert.deepEqual(lookups, [true, false])
  })

  it('takes the records from the current snapshot (same version), and ranks again for a new version', () => {
    const lookups: boolean[] = []
    const cache = createRankedCache<ReturnType<typeof relay>>({ maxEntries: 10, onLookup: (hit) => lookups.push(hit) })
    const first = cache.get({ etag: 'W/"v1"', relays: many }, 'k', 3)
    // a heartbeat: same ids, peer ids and addrs (same ETag), new timestamps
    const beaten = many.map((r) => ({ ...r, updated_at: 't1' }))
    const again = cache.get({ etag: 'W/"v1"', relays: beaten }, 'k', 3)
    assert.deepEqual(again.map((r) => r.id), first.map((r) => r.id))
    assert.ok(again.every((r) => r.updated_at === 't1'), 'records come from the snapshot asked about')
    // the best relay left: a new version
    const left = beaten.filter((r) => r.id !== first[0]!.id)
    assert.deepEqual(cache.get({ etag: 'W/"v2"', relays: left }, 'k', 3), rankRelays(left, 'k').slice(0, 3))
    assert.deepEqual(lookups, [false, true, false])
  })

  it('maxEntries 0 ranks every time', () => {
    const lookups: boolean[] = []
    const cache = createRankedCache<ReturnType<typeof relay>>({ maxEntries: 0, onLookup: (hit) => lookups.push(hit) })
    for (let i = 0; i < 3; i++) assert.deepEqual(cache.get({ etag: 'x', relays: many }, 'k', 3), rankRelays(many, 'k').slice(0, 3))
    assert.equal(cache.size(), 0)
  })

  it('discovery: a repeated ?for= is a hit (metric without peer ids), and a relay that left leaves the answer', async () => {
    const store = createMemoryStore()
    const app = await createDiscoveryServer({ store, p2pSecret: 'unused-secret', logger: false, listMaxAgeMs: 0 })
    cleanups.push(() => app.close())
    const peers = [PEER_A, PEER_B, PEER_C]
    for (let i = 0; i < 12; i++) await store.register(registration(`r${i}`, peers[i % 3], 4000 + i), 60_000)
    const ask = async () => (await app.inject({ method: 'GET', url: `${RELAYS}?for=${PEER_A}&count=4` })).json() as Array<{ id: string, updated_at: string }>
    const expected = rankRelays(await store.list(), PEER_A).slice(0, 4)
    assert.deepEqual(await ask(), JSON.parse(JSON.stringify(expected)))
    assert.deepEqual(await ask(), JSON.parse(JSON.stringify(expected)))
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /pos_relay_discovery_ranked_cache_lookups_total\{result="hit"\} 1\n/)
    assert.match(metrics, /pos_relay_discovery_ranked_cache_lookups_total\{result="miss"\} 1\n/)
    assert.ok(!metrics.includes(PEER_A))
    // a heartbeat keeps the version: a hit, with the new updated_at
    await sleep(5)
    const beat = await store.register(registration(expected[0]!.id, peers[Number(expected[0]!.id.slice(1)) % 3], 4000 + Number(expected[0]!.id.slice(1))), 60_000)
    const afterBeat = await ask()
    assert.equal(afterBeat[0]!.id, expected[0]!.id)
    assert.notEqual(beat.updated_at, expected[0]!.updated_at)
    assert.equal(afterBeat[0]!.updated_at, beat.updated_at)
    await store.deregister(expected[0]!.id)
    assert.deepEqual(await ask(), JSON.parse(JSON.stringify(rankRelays(await store.list(), PEER_A).slice(0, 4))))
  })
})
