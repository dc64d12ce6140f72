import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { PEER_B } from './fixtures.ts'
import { AUTH, post, RELAYS, SECRET, setup, validBody } from './relay-api.ts'

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

  it('refuses to start without a secret', async () => {
    await assert.rejects(setup({ p2pSecret: '' }), /p2pSecret/)
  })
})
