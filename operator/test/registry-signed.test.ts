/**
 * The operator signs each relay's registrations and deletions with the relay's own key (from its
 * slot's identity Secret), so a shared-secret holder cannot refresh or delete what it lists.
 * Real Redis, real keys.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRedisStore, RegistrationForbiddenError, type RelayStore } from '@pos-relay/discovery'
import { keyOfIdentityConfig, newRelayIdentity, Registry, type Registration } from '@pos-relay/operator'
import { signRegistration } from '@pos-relay/shared'
import { startRedis, type RedisServer } from '@pos-relay/testing'
import type { PrivateKey } from '@libp2p/interface'

let redis: RedisServer
before(async () => { redis = await startRedis() })
after(async () => { await redis?.stop() })

async function relay (slot: number): Promise<{ key: PrivateKey, reg: Registration }> {
  const identity = await newRelayIdentity(`ns:edge:${slot}`)
  const key = keyOfIdentityConfig(Buffer.from(identity.configJson).toString('base64'), identity.peerId)
  assert.ok(key, 'the identity Secret config yields the key of its peer id')
  const p = identity.peerId
  return {
    key,
    reg: {
      id: `ns:edge:${slot}`,
      peer_id: p,
      addrs: [`/ip4/192.0.2.${slot + 1}/tcp/7373/p2p/${p}`],
      meta: { managed_by: 'pos-relay-operator', namespace: 'ns', pool: 'edge', slot: String(slot), pod: `edge-${slot}`, node: `n${slot}` }
    }
  }
}

function setup (keys: Map<string, PrivateKey>): { store: RelayStore, registry: Registry, close: () => Promise<void> } {
  const url = redis.url
  const prefix = `op-signed-${randomUUID()}:`
  const store = createRedisStore({ url, keyPrefix: prefix })
  const registry = new Registry({
    storeFor: (u) => createRedisStore({ url: u, keyPrefix: prefix }),
    tickMs: 20,
    sign: async (op, fields) => {
      const key = keys.get(fields.peer_id)
      return key == null ? undefined : await signRegistration(key, { op, ...fields })
    }
  })
  return { store, registry, close: async () => { await registry.reset(); await store.close() } }
}

describe('operator registry: signed registrations', () => {
  it('registers and heartbeats signed; the shared secret alone (unsigned writes) can neither refresh nor delete; the registry deregisters signed', async () => {
    const a = await relay(0)
    const { store, registry, close } = setup(new Map([[a.reg.peer_id, a.key]]))
    try {
      await registry.setPool('ns/edge', { url: redis.url, ttlMs: 1500, registrations: [a.reg], absent: [] })
      const first = await store.get(a.reg.id)
      assert.equal(typeof first?.signed_at, 'number', JSON.stringify(first))
      await assert.rejects(store.register(a.reg, 30_000), RegistrationForbiddenError)
      await assert.rejects(store.deregister(a.reg.id), RegistrationForbiddenError)
      // a heartbeat (a third of the TTL) is signed anew
      registry.start()
      let now = first
      for (let i = 0; i < 100 && now?.signed_at === first?.signed_at; i++) { await sleep(20); now = await store.get(a.reg.id) }
      assert.ok((now?.signed_at ?? 0) > first!.signed_at!, 'heartbeat signed with a later signed_at')
      await registry.setPool('ns/edge', { url: redis.url, ttlMs: 1500, registrations: [], absent: [] })
      assert.equal(await store.get(a.reg.id), undefined, 'deregistered (signed)')
      assert.equal(registry.poolError('ns/edge'), undefined)
    } finally {
      await close()
    }
  })

  it('deregisters a signed entry it did not register (a relay observed unhealthy, or pool cleanup) by signing with the key of the peer listed', async () => {
    const a = await relay(1)
    const b = await relay(2)
    const { store, registry, close } = setup(new Map([[a.reg.peer_id, a.key], [b.reg.peer_id, b.key]]))
    try {
      for (const r of [a, b]) {
        await store.register(r.reg, 30_000, await signRegistration(r.key, { op: 'register', id: r.reg.id, peer_id: r.reg.peer_id, addrs: r.reg.addrs }))
      }
      await registry.setPool('ns/edge', { url: redis.url, ttlMs: 30_000, registrations: [], absent: [a.reg.id] })
      assert.equal(await store.get(a.reg.id), undefined)
      assert.equal(await registry.cleanupPool('ns/edge', redis.url, 'ns', 'edge'), 1)
      assert.deepEqual(await store.list(), [])
    } finally {
      await close()
    }
  })

  it('keyOfIdentityConfig refuses a config whose key is not the peer id\'s', async () => {
    const a = await newRelayIdentity('x')
    const b = await newRelayIdentity('y')
    assert.equal(keyOfIdentityConfig(Buffer.from(a.configJson).toString('base64'), b.peerId), undefined)
    assert.equal(keyOfIdentityConfig('not base64 json', a.peerId), undefined)
  })
})
