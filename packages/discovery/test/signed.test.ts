import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  createDiscoveryServer,
  createMemoryStore,
  createRedisStore,
  RegistrationConflictError,
  RegistrationForbiddenError,
  type RelayStore,
} from '@pos-relay/discovery'
import { registrationSigningPayload, signRegistration } from '@pos-relay/shared'
import { useRedisHarness } from './harness.ts'

const SECRET = 'test-p2p-secret-signed'
const RELAYS = '/api/p2p/relays'

interface Relay {
  key: PrivateKey
  peerId: string
  addrs: string[]
}

async function newRelay (port = 4001): Promise<Relay> {
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  return { key, peerId, addrs: [`/ip4/203.0.113.7/tcp/${port}/p2p/${peerId}`, `/ip4/203.0.113.7/udp/${port}/quic-v1/p2p/${peerId}`] }
}

async function signedBody (r: Relay, id: string, signedAt = Date.now(), addrs = r.addrs) {
  const proof = await signRegistration(r.key, { op: 'register', id, peer_id: r.peerId, addrs, signed_at: signedAt })
  return { id, peer_id: r.peerId, addrs, ...proof }
}

async function signedDeletion (r: Relay, id: string, signedAt = Date.now()) {
  const proof = await signRegistration(r.key, { op: 'delete', id, peer_id: r.peerId, addrs: [], signed_at: signedAt })
  return { peer_id: r.peerId, ...proof }
}

const harness = useRedisHarness()

/** A new relay registered in `store` under `id`, signed at `t` (now). */
async function registerSigned (store: RelayStore, id: string) {
  const r = await newRelay()
  const t = Date.now()
  const reg = { id, peer_id: r.peerId, addrs: r.addrs }
  const proof = await signRegistration(r.key, { op: 'register', ...reg, signed_at: t })
  await store.register(reg, 10_000, proof)
  return { r, t, reg, proof }
}

function redisStore (): RelayStore {
  const store = createRedisStore({ url: harness.redis.url, keyPrefix: `signed-${randomUUID()}:` })
  harness.onCleanup(() => store.close())
  return store
}

/** A discovery server over real HTTP on a loopback port, on Redis (or the memory store). */
async function serve (opts: { requireSigned?: boolean; store?: RelayStore } = {}) {
  const store = opts.store ?? redisStore()
  const app = await createDiscoveryServer({ store, p2pSecret: SECRET, logger: false, requireSigned: opts.requireSigned, listMaxAgeMs: 0 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  harness.onCleanup(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${SECRET}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
  }
  return {
    store,
    post: (body: unknown) => call('POST', RELAYS, body),
    del: (id: string, body?: unknown) => call('DELETE', `${RELAYS}/${id}`, body),
    list: async () => (await call('GET', RELAYS)).body as { id: string; peer_id: string; addrs: string[]; signed_at?: number; updated_at: string }[],
  }
}

describe('signed registrations over HTTP (Redis store)', () => {
  it('signed register, then refresh with the same key; the entry shows signed_at', async () => {
    const d = await serve()
    const r = await newRelay()
    const t = Date.now()
    const first = await d.post(await signedBody(r, 'relay-s', t))
    assert.equal(first.status, 200, JSON.stringify(first.body))
    assert.equal(first.body.signed_at, t)
    const second = await d.post(await signedBody(r, 'relay-s', t + 5, [r.addrs[0]!]))
    assert.equal(second.status, 200, JSON.stringify(second.body))
    assert.equal(second.body.registered_at, first.body.registered_at)
    const [entry] = await d.list()
    assert.equal(entry?.signed_at, t + 5)
    assert.deepEqual(entry?.addrs, [r.addrs[0]])
  })

  it('an unsigned refresh or an unsigned DELETE of a signed entry answers 403 and changes nothing', async () => {
    const d = await serve()
    const r = await newRelay()
    assert.equal((await d.post(await signedBody(r, 'relay-s'))).status, 200)
    const before = await d.list()
    const refresh = await d.post({ id: 'relay-s', peer_id: r.peerId, addrs: ['/ip4/198.51.100.66/tcp/4001'] })
    assert.equal(refresh.status, 403, JSON.stringify(refresh.body))
    assert.equal(refresh.body.field, 'signature')
    assert.match(refresh.body.message, /registered signed; an unsigned refresh is refused/)
    const del = await d.del('relay-s')
    assert.equal(del.status, 403, JSON.stringify(del.body))
    assert.match(del.body.message, /unsigned deletion is refused/)
    assert.deepEqual(await d.list(), before)
  })

  it('a signed DELETE by the same key removes it', async () => {
    const d = await serve()
    const r = await newRelay()
    const t = Date.now()
    assert.equal((await d.post(await signedBody(r, 'relay-s', t))).status, 200)
    const del = await d.del('relay-s', await signedDeletion(r, 'relay-s', t + 1))
    assert.equal(del.status, 204, JSON.stringify(del.body))
    assert.deepEqual(await d.list(), [])
  })

  it("another key's signature is refused: forged body 403, takeover 409, foreign deletion 403; nothing changed", async () => {
    const d = await serve()
    const owner = await newRelay()
    const other = await newRelay(4002)
    assert.equal((await d.post(await signedBody(owner, 'relay-s'))).status, 200)
    const before = await d.list()
    // owner's peer_id and addrs, signed by another key
    const forged = await signRegistration(other.key, { op: 'register', id: 'relay-s', peer_id: owner.peerId, addrs: owner.addrs, signed_at: Date.now() + 1 })
    const res = await d.post({ id: 'relay-s', peer_id: owner.peerId, addrs: owner.addrs, ...forged })
    assert.equal(res.status, 403, JSON.stringify(res.body))
    assert.match(res.body.message, /signature does not verify/)
    // a validly signed registration of the id by another peer
    const takeover = await d.post(await signedBody(other, 'relay-s', Date.now() + 2))
    assert.equal(takeover.status, 409, JSON.stringify(takeover.body))
    // a validly signed deletion by another key
    const del = await d.del('relay-s', await signedDeletion(other, 'relay-s', Date.now() + 3))
    assert.equal(del.status, 403, JSON.stringify(del.body))
    assert.match(del.body.message, /belongs to peer/)
    // a deletion naming the owner but signed by another key
    const forgedDel = await signRegistration(other.key, { op: 'delete', id: 'relay-s', peer_id: owner.peerId, addrs: [], signed_at: Date.now() + 4 })
    const del2 = await d.del('relay-s', { peer_id: owner.peerId, ...forgedDel })
    assert.equal(del2.status, 403, JSON.stringify(del2.body))
    assert.deepEqual(await d.list(), before)
  })

  it('a signature binds id, addrs (order included) and the operation', async () => {
    const d = await serve()
    const r = await newRelay()
    const t = Date.now()
    const good = await signedBody(r, 'relay-s', t)
    for (const [name, body] of [
      ['other id', { ...good, id: 'relay-t' }],
      ['other addrs', { ...good, addrs: [r.addrs[0]] }],
      ['addrs reordered', { ...good, addrs: [...r.addrs].reverse() }],
      ['other signed_at', { ...good, signed_at: t + 1 }],
    ] as const) {
      const res = await d.post(body)
      assert.equal(res.status, 403, `${name}: ${JSON.stringify(res.body)}`)
    }
    assert.deepEqual(await d.list(), [])
    assert.equal((await d.post(good)).status, 200)
    // a registration's signature used as a deletion's
    const del = await d.del('relay-s', { peer_id: r.peerId, addrs: r.addrs, signed_at: t + 1, signature: (await signedBody(r, 'relay-s', t + 1)).signature })
    assert.equal(del.status, 403, JSON.stringify(del.body))
    assert.equal((await d.list()).length, 1)
  })

  it('a signed refresh_only registration is signed with op "refresh": a register signature does not verify for it, nor the reverse', async () => {
    const d = await serve()
    const r = await newRelay()
    const t = Date.now()
    assert.equal((await d.post(await signedBody(r, 'relay-r', t))).status, 200)
    const refresh = await signRegistration(r.key, { op: 'refresh', id: 'relay-r', peer_id: r.peerId, addrs: r.addrs, signed_at: t + 1 })
    const asRegister = { id: 'relay-r', peer_id: r.peerId, addrs: r.addrs, ...refresh }
    assert.equal((await d.post(asRegister)).status, 403, 'a refresh signature accepted for a creating registration')
    assert.equal((await d.post({ ...asRegister, refresh_only: true })).status, 200)
    const register = await signedBody(r, 'relay-r', t + 2)
    const res = await d.post({ ...register, refresh_only: true })
    assert.equal(res.status, 403, 'a register signature accepted for a refresh-only one')
    assert.equal(res.body.field, 'signature')
  })

  it('a replayed or older signed_at is refused (403), for registration and deletion', async () => {
    const d = await serve()
    const r = await newRelay()
    const t = Date.now()
    const body = await signedBody(r, 'relay-s', t)
    assert.equal((await d.post(body)).status, 200)
    const before = await d.list()
    const replay = await d.post(body)
    assert.equal(replay.status, 403, JSON.stringify(replay.body))
    assert.equal(replay.body.field, 'signed_at')
    assert.match(replay.body.message, /not later than/)
    const older = await d.post(await signedBody(r, 'relay-s', t - 1000, [r.addrs[1]!]))
    assert.equal(older.status, 403)
    const oldDelete = await d.del('relay-s', await signedDeletion(r, 'relay-s', t))
    assert.equal(oldDelete.status, 403)
    assert.deepEqual(await d.list(), before)
  })

  it('a signed_at more than 60 s from discovery\'s clock is refused (403), both ways', async () => {
    const d = await serve()
    const r = await newRelay()
    for (const offset of [-61_000, 61_000]) {
      const res = await d.post(await signedBody(r, 'relay-s', Date.now() + offset))
      assert.equal(res.status, 403, JSON.stringify(res.body))
      assert.equal(res.body.field, 'signed_at')
      assert.match(res.body.message, /from discovery's clock/)
    }
    assert.deepEqual(await d.list(), [])
    assert.equal((await d.post(await signedBody(r, 'relay-s', Date.now() - 50_000))).status, 200)
    const del = await d.del('relay-s', await signedDeletion(r, 'relay-s', Date.now() + 61_000))
    assert.equal(del.status, 403, JSON.stringify(del.body))
    assert.equal((await d.list()).length, 1)
  })

  it('400 for malformed signed requests, storing nothing', async () => {
    const d = await serve()
    const r = await newRelay()
    const good = await signedBody(r, 'relay-s')
    for (const [name, body, field] of [
      ['signature without signed_at', { ...good, signed_at: undefined }, 'signed_at'],
      ['signed_at without signature', { ...good, signature: undefined }, 'signature'],
      ['signed_at not an integer', { ...good, signed_at: 1.5 }, 'signed_at'],
      ['signature not base64url', { ...good, signature: 'a b' }, 'signature'],
      ['addrs not in normal form', { ...good, addrs: ['/ip4/203.0.113.7/tcp/4001'] }, 'addrs.0'],
    ] as const) {
      const res = await d.post(body)
      assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`)
      assert.equal(res.body.field, field, name)
    }
    assert.equal((await d.del('relay-s', { peer_id: r.peerId, signature: good.signature })).status, 400)
    assert.deepEqual(await d.list(), [])
  })

  it('unsigned entries keep the seed contract: unsigned register, refresh and delete', async () => {
    const d = await serve()
    const r = await newRelay()
    assert.equal((await d.post({ id: 'relay-u', peer_id: r.peerId, addrs: ['/ip4/203.0.113.7/tcp/4001'] })).status, 200)
    assert.equal((await d.post({ id: 'relay-u', peer_id: r.peerId, addrs: ['/ip4/203.0.113.8/tcp/4001'] })).status, 200)
    assert.equal((await d.list())[0]?.signed_at, undefined)
    assert.equal((await d.del('relay-u')).status, 204)
    assert.deepEqual(await d.list(), [])
  })

  it('requireSigned refuses unsigned registrations and deletions (403) and accepts signed ones', async () => {
    const d = await serve({ requireSigned: true })
    const r = await newRelay()
    const unsigned = await d.post({ id: 'relay-u', peer_id: r.peerId, addrs: ['/ip4/203.0.113.7/tcp/4001'] })
    assert.equal(unsigned.status, 403, JSON.stringify(unsigned.body))
    assert.match(unsigned.body.message, /requires signed registrations/)
    assert.deepEqual(await d.list(), [])
    const t = Date.now()
    assert.equal((await d.post(await signedBody(r, 'relay-s', t))).status, 200)
    // an unsigned deletion of an entry that does not exist is refused too
    assert.equal((await d.del('relay-x')).status, 403)
    assert.equal((await d.del('relay-s', await signedDeletion(r, 'relay-s', t + 1))).status, 204)
  })

  it('the OpenAPI document describes the signature format', async () => {
    const app = await createDiscoveryServer({ store: createMemoryStore(), p2pSecret: SECRET, logger: false })
    harness.onCleanup(() => app.close())
    await app.ready()
    const doc = (app as unknown as { swagger(): { info: { description?: string } } }).swagger()
    const text = JSON.stringify(doc)
    assert.match(doc.info.description ?? '', /pos-relay\/relay-registration\/v1/)
    assert.match(text, /signed_at/)
    assert.match(text, /"403"/)
  })
})

describe('signed-registration rules inside the store (direct writers such as the operator)', () => {
  for (const [name, make] of [
    ['memory', () => createMemoryStore()],
    ['redis', () => redisStore()],
  ] as const) {
    describe(name, () => {
      it('an unsigned register or deregister of a signed entry throws RegistrationForbiddenError and changes nothing', async () => {
        const store = make()
        const { r, t, reg } = await registerSigned(store, 'relay-s')
        const before = await store.get('relay-s')
        await assert.rejects(store.register(reg, 10_000), (e) => e instanceof RegistrationForbiddenError && e.reason === 'unsigned')
        await assert.rejects(store.deregister('relay-s'), (e) => e instanceof RegistrationForbiddenError && e.reason === 'unsigned')
        await assert.rejects(
          store.register(reg, 10_000, await signRegistration(r.key, { op: 'register', ...reg, signed_at: t })),
          (e) => e instanceof RegistrationForbiddenError && e.reason === 'replay'
        )
        await assert.rejects(
          store.register(reg, 10_000, await signRegistration(r.key, { op: 'register', ...reg, signed_at: t + 70_000 })),
          (e) => e instanceof RegistrationForbiddenError && e.reason === 'skew'
        )
        const other = await newRelay()
        const otherReg = { ...reg, peer_id: other.peerId, addrs: other.addrs }
        await assert.rejects(
          store.register(otherReg, 10_000, await signRegistration(other.key, { op: 'register', ...otherReg, signed_at: t + 1 })),
          RegistrationConflictError
        )
        await assert.rejects(
          store.deregister('relay-s', { peer_id: other.peerId, addrs: [], ...(await signRegistration(other.key, { op: 'delete', id: 'relay-s', peer_id: other.peerId, addrs: [], signed_at: t + 1 })) }),
          (e) => e instanceof RegistrationForbiddenError && e.reason === 'key'
        )
        await assert.rejects(
          store.register(reg, 10_000, { signed_at: t + 1, signature: Buffer.alloc(64).toString('base64url') }),
          (e) => e instanceof RegistrationForbiddenError && e.reason === 'signature'
        )
        assert.deepEqual(await store.get('relay-s'), before)
        assert.equal(
          await store.deregister('relay-s', { peer_id: r.peerId, addrs: [], ...(await signRegistration(r.key, { op: 'delete', id: 'relay-s', peer_id: r.peerId, addrs: [], signed_at: t + 1 })) }),
          true
        )
      })

      it('a captured signed registration cannot re-create the entry after its signed deletion or its expiry', async () => {
        const store = make()
        const { r, t, reg, proof: captured } = await registerSigned(store, 'relay-t')
        const deletion = await signRegistration(r.key, { op: 'delete', id: 'relay-t', peer_id: r.peerId, addrs: [], signed_at: t + 1 })
        assert.equal(await store.deregister('relay-t', { peer_id: r.peerId, addrs: [], ...deletion }), true)
        await assert.rejects(store.register(reg, 10_000, captured), (e) => e instanceof RegistrationForbiddenError && e.reason === 'replay')
        // the id stays signed for the window: the p2p secret alone cannot take it either
        await assert.rejects(store.register(reg, 10_000), (e) => e instanceof RegistrationForbiddenError && e.reason === 'unsigned')
        assert.equal(await store.get('relay-t'), undefined)

        // expiry: the entry is gone from the list, its last signed_at is not
        const short = await signRegistration(r.key, { op: 'register', ...reg, signed_at: t + 2 })
        await store.register(reg, 300, short)
        await new Promise((resolve) => setTimeout(resolve, 450))
        assert.equal(await store.get('relay-t'), undefined)
        await assert.rejects(store.register(reg, 10_000, short), (e) => e instanceof RegistrationForbiddenError && e.reason === 'replay')
        assert.equal(await store.get('relay-t'), undefined)
        // the relay itself, signing anew, is listed again
        await store.register(reg, 10_000, await signRegistration(r.key, { op: 'register', ...reg, signed_at: t + 3 }))
        assert.equal((await store.get('relay-t'))?.signed_at, t + 3)
      })

      it('of concurrent signed refreshes with one signed_at exactly one wins', async () => {
        const store = make()
        const { r, t, reg } = await registerSigned(store, 'relay-c')
        const proof = await signRegistration(r.key, { op: 'register', ...reg, signed_at: t + 1 })
        const results = await Promise.allSettled(Array.from({ length: 8 }, () => store.register(reg, 10_000, proof)))
        assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1)
      })
    })
  }
})

describe('signing payload', () => {
  it('is length-prefixed, domain-separated and stable (test vector)', () => {
    const bytes = registrationSigningPayload({ op: 'delete', id: 'r1', peer_id: 'P', addrs: ['/a', '/b'], signed_at: 7 })
    const hex = Buffer.from(bytes).toString('hex')
    const field = (s: string) => Buffer.from(s).length.toString(16).padStart(8, '0') + Buffer.from(s).toString('hex')
    const expected = field('pos-relay/relay-registration/v1') + field('delete') + field('r1') + field('P') + field('7') + '00000002' + field('/a') + field('/b')
    assert.equal(hex, expected)
  })
})
