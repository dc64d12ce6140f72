import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createMemoryAccountStore, createMemoryRevocationBus, createMemoryUsageSink, DEFAULT_TIERS } from '@pos-relay/accounts'
import { createDiscoveryServer, createMemoryStore } from '@pos-relay/discovery'
import { waitFor } from '@pos-relay/testing'
import type { InjectOptions } from 'fastify'
import { ADMIN, ADMIN_AUTH, asBearer, createAccount, inject, issuer, P2P, setup, ticket } from './accounts-api.ts'
import { listedIds, registration } from './fixtures.ts'
import { setup as setupRelayApi } from './relay-api.ts'

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
    const { app } = await setupRelayApi()
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
    // the store plays no part in this check
    const relays = createMemoryStore()
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
    assert.deepEqual(await listedIds(relays), ['keep'])
    assert.equal((await app.inject({ method: 'POST', url: '/api/p2p/relays', headers: asBearer(P2P), payload: registration('relay-1') })).statusCode, 200)
  })
})
