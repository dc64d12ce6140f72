import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createMemoryStore, type RelayStore } from '@pos-relay/discovery'
import { Registry, type Registration } from '@pos-relay/operator'

const PEER = '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'
const reg = (slot: number, pool = 'edge'): Registration => ({
  id: `ns:${pool}:${slot}`,
  peer_id: PEER,
  addrs: [`/ip4/192.0.2.${slot + 1}/tcp/7373/p2p/${PEER}`],
  meta: { managed_by: 'pos-relay-operator', namespace: 'ns', pool, slot: String(slot), pod: `${pool}-${slot}`, node: `n${slot}` }
})
const URL = 'redis://test'

function setup (opts: { guard?: (r: Registration) => boolean, wrap?: (s: RelayStore) => RelayStore } = {}) {
  const clock = { t: 1_000_000 }
  const store = createMemoryStore({ now: () => clock.t })
  const changed: string[] = []
  const transitions: string[] = []
  const registry = new Registry({
    onTransition: (k, t) => { transitions.push(`${k} ${t.op} ${t.op === 'registered' ? t.registration.id : t.id}${t.op === 'deregistered' && t.registration != null ? ` (${t.registration.meta.pod})` : ''}`) },
    // closing a connection does not delete data: keep the memory store's content across close()
    storeFor: () => ({ ...(opts.wrap != null ? opts.wrap(store) : store), close: async () => {} }),
    now: () => clock.t,
    guard: opts.guard,
    tickMs: 5,
    onPoolChanged: (k) => { changed.push(k) }
  })
  return { clock, store, registry, changed, transitions }
}

const ids = async (s: RelayStore) => (await s.list()).map((r) => r.id)

describe('Registry', () => {
  it('reports transitions (for Events): a new listing and a removal, not heartbeats or no-op deregistrations', async () => {
    const { clock, store, registry, transitions } = setup()
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: ['ns:edge:5'] })
    assert.deepEqual(transitions, ['ns/edge registered ns:edge:0'], 'an id that was not listed is not reported')
    registry.start()
    clock.t += 11_000 // past TTL/3: a heartbeat
    const before = (await store.get('ns:edge:0'))!.updated_at
    for (let i = 0; i < 100 && (await store.get('ns:edge:0'))!.updated_at === before; i++) await sleep(5)
    assert.notEqual((await store.get('ns:edge:0'))!.updated_at, before, 'heartbeat happened')
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [], absent: [] })
    assert.deepEqual(transitions, ['ns/edge registered ns:edge:0', 'ns/edge deregistered ns:edge:0 (edge-0)'])
    await registry.reset()
  })

  it('registers the wanted entries with the TTL, with meta, and reports them', async () => {
    const { store, registry, changed } = setup()
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0), reg(1)], absent: [] })
    assert.deepEqual(await ids(store), ['ns:edge:0', 'ns:edge:1'])
    const rec = await store.get('ns:edge:0')
    assert.equal(Date.parse(rec!.expires_at) - Date.parse(rec!.updated_at), 30_000)
    assert.equal(rec!.meta!.pool, 'edge')
    assert.deepEqual([...registry.registeredIds('ns/edge')].sort(), ['ns:edge:0', 'ns:edge:1'])
    assert.deepEqual(changed, ['ns/edge'])
    assert.deepEqual(registry.counts(), { wanted: 2, registered: 2 })
  })

  it('an entry no longer wanted is deregistered at once; an unchanged setPool writes nothing', async () => {
    let registers = 0
    const { store, registry } = setup({ wrap: (s) => ({ ...s, register: async (r, t) => { registers++; return await s.register(r, t) } }) })
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0), reg(1)], absent: [] })
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0), reg(1)], absent: [] })
    assert.equal(registers, 2)
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    assert.deepEqual(await ids(store), ['ns:edge:0'])
    assert.deepEqual([...registry.registeredIds('ns/edge')], ['ns:edge:0'])
  })

  it('ids of relays observed unhealthy are deregistered even when another process registered them', async () => {
    const { store, registry } = setup()
    await store.register(reg(1), 30_000) // left by the previous leader
    await store.register(reg(2), 30_000) // healthy, registered by the previous leader
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0), reg(2)], absent: ['ns:edge:1'] })
    assert.deepEqual(await ids(store), ['ns:edge:0', 'ns:edge:2'])
  })

  it('never removes what it does not know about: a fresh registry and reset() deregister nothing', async () => {
    const { store, registry } = setup()
    await store.register(reg(5), 30_000)
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    await registry.reset()
    assert.deepEqual(await ids(store), ['ns:edge:0', 'ns:edge:5'])
  })

  it('setPool(null) (pool gone) deregisters what this process registered for it, not other pools', async () => {
    const { store, registry } = setup()
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    await registry.setPool('ns/core', { url: URL, ttlMs: 30_000, registrations: [reg(0, 'core')], absent: [] })
    await registry.setPool('ns/edge', null)
    assert.deepEqual(await ids(store), ['ns:core:0'])
  })

  it('heartbeats re-register when a third of the TTL has passed', async () => {
    const { clock, store, registry } = setup()
    registry.start()
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    const first = (await store.get('ns:edge:0'))!.updated_at
    clock.t += 9_000
    await sleep(30)
    assert.equal((await store.get('ns:edge:0'))!.updated_at, first, 'not yet due')
    clock.t += 1_000
    await sleep(50)
    assert.notEqual((await store.get('ns:edge:0'))!.updated_at, first)
    // kept alive across many TTLs
    for (let i = 0; i < 10; i++) { clock.t += 10_000; await sleep(30) }
    assert.deepEqual(await ids(store), ['ns:edge:0'])
    await registry.reset()
  })

  it('revoke deregisters at once; the guard keeps heartbeats and late reconciles from re-registering', async () => {
    let healthy = true
    const { clock, store, registry } = setup({ guard: () => healthy })
    registry.start()
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    healthy = false
    registry.revoke('ns/edge', 'ns:edge:0')
    await sleep(20)
    assert.deepEqual(await ids(store), [])
    // a reconcile that observed the pod before it turned unhealthy
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    clock.t += 20_000
    await sleep(30)
    assert.deepEqual(await ids(store), [])
    healthy = true
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    assert.deepEqual(await ids(store), ['ns:edge:0'])
    await registry.reset()
  })

  it('operations on one id are serialised: a revoke during a slow register wins', async () => {
    const { store, registry } = setup({ wrap: (s) => ({ ...s, register: async (r, t) => { await sleep(50); return await s.register(r, t) } }) })
    const p = registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    await sleep(5)
    registry.revoke('ns/edge', 'ns:edge:0')
    await p
    await sleep(80)
    assert.deepEqual(await ids(store), [])
  })

  it('store failures are reported per pool and retried until they succeed', async () => {
    let down = true
    const { clock, store, registry, changed } = setup({
      wrap: (s) => ({ ...s, register: async (r, t) => { if (down) throw new Error('connect ECONNREFUSED'); return await s.register(r, t) } })
    })
    registry.start()
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    assert.match(registry.poolError('ns/edge')!, /ECONNREFUSED/)
    assert.deepEqual([...registry.registeredIds('ns/edge')], [])
    down = false
    for (let i = 0; i < 100 && registry.poolError('ns/edge') != null; i++) { clock.t += 1000; await sleep(20) }
    assert.equal(registry.poolError('ns/edge'), undefined)
    assert.deepEqual(await ids(store), ['ns:edge:0'])
    assert.ok(changed.length >= 1)
    await registry.reset()
  })

  it('no Redis URL: the pool reports why', async () => {
    const { registry } = setup()
    await registry.setPool('ns/edge', { error: 'Secret ns/disc not found', ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    assert.equal(registry.poolError('ns/edge'), 'Secret ns/disc not found')
  })

  it('cleanupPool removes every record of the pool (also ones this process never registered), and only those', async () => {
    const { store, registry } = setup()
    await registry.setPool('ns/edge', { url: URL, ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    await store.register(reg(7), 30_000)
    await store.register(reg(0, 'core'), 30_000)
    await store.register({ id: 'self-hosted', peer_id: PEER, addrs: [`/ip4/192.0.2.9/tcp/7373/p2p/${PEER}`] }, 30_000)
    const removed = await registry.cleanupPool('ns/edge', URL, 'ns', 'edge')
    assert.equal(removed, 2, 'the one this process listed and the one it found')
    assert.deepEqual(await ids(store), ['ns:core:0', 'self-hosted'])
  })

  it('closes the connection of a URL no pool uses any more (the pool moved to another Redis, then went away)', async () => {
    const open = new Map<string, number>()
    const registry = new Registry({
      storeFor: (url) => {
        open.set(url, (open.get(url) ?? 0) + 1)
        return { ...createMemoryStore(), close: async () => { open.set(url, open.get(url)! - 1) } }
      },
      tickMs: 5
    })
    await registry.setPool('ns/edge', { url: 'redis://a', ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    await registry.setPool('ns/other', { url: 'redis://a', ttlMs: 30_000, registrations: [reg(0, 'other')], absent: [] })
    assert.deepEqual(Object.fromEntries(open), { 'redis://a': 1 }, 'one connection per URL')
    // edge moves to redis://b: its entry in a is deregistered there, a stays open for ns/other
    await registry.setPool('ns/edge', { url: 'redis://b', ttlMs: 30_000, registrations: [reg(0)], absent: [] })
    assert.deepEqual(Object.fromEntries(open), { 'redis://a': 1, 'redis://b': 1 })
    await registry.setPool('ns/other', null)
    assert.deepEqual(Object.fromEntries(open), { 'redis://a': 0, 'redis://b': 1 }, 'a is closed once nothing uses it')
    await registry.setPool('ns/edge', null)
    assert.deepEqual(Object.fromEntries(open), { 'redis://a': 0, 'redis://b': 0 })
    await registry.reset()
  })
})
