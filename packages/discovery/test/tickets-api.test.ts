import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TicketVerifier, ticketKeysUrl } from '@pos-relay/accounts'
import { ADMIN_AUTH, asBearer, createAccount, inject, issuer, P2P, setup, ticket } from './accounts-api.ts'
import { PEER_A, PEER_A_CID, PEER_B } from './fixtures.ts'

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
