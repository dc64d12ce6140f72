import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { startRedis, waitFor, type RedisServer } from '@pos-relay/testing'
import type { InjectOptions } from 'fastify'
import { ADMIN_AUTH, asBearer, createAccount, inject, setup as setupAccounts } from './accounts-api.ts'
import { PEER_A } from './fixtures.ts'
import { AUTH, post, RELAYS, setup, validBody } from './relay-api.ts'

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

describe('accounts Redis outage', () => {
  it('503 for tickets and admin routes while Redis is down, service again afterwards', async () => {
    const own = await startRedis()
    try {
      const { app } = await setupAccounts({ url: own.url })
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
