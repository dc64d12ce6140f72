import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { registration } from './fixtures.ts'
import { AUTH, post, RELAYS, SECRET, setup, validBody } from './relay-api.ts'

describe('authentication', () => {
  const badHeaders: [string, Record<string, string>][] = [
    ['no Authorization header', {}],
    ['wrong secret', { authorization: 'Bearer not-the-secret' }],
    ['secret with a suffix', { authorization: `Bearer ${SECRET}x` }],
    ['secret prefix only', { authorization: `Bearer ${SECRET.slice(0, -1)}` }],
    ['Bearer with an empty token', { authorization: 'Bearer ' }],
    ['bare Bearer', { authorization: 'Bearer' }],
    ['Basic scheme', { authorization: `Basic ${Buffer.from(`relay:${SECRET}`).toString('base64')}` }],
    ['secret without scheme', { authorization: SECRET }],
  ]

  for (const [name, headers] of badHeaders) {
    it(`401 for ${name}, storing nothing`, async () => {
      const { app, store } = await setup()
      await store.register(registration('existing'), 60_000)
      const snapshot = await store.list()
      for (const res of [
        await post(app, validBody(), headers),
        await app.inject({ method: 'DELETE', url: `${RELAYS}/existing`, headers }),
      ]) {
        assert.equal(res.statusCode, 401)
        assert.deepEqual(res.json(), { error: 'Unauthorized', message: 'missing or invalid bearer token', statusCode: 401 })
        assert.equal(res.headers['www-authenticate'], 'Bearer realm="pos-relay"')
      }
      assert.deepEqual(await store.list(), snapshot)
    })
  }

  it('401 takes precedence over body errors for unauthenticated requests', async () => {
    const { app, store } = await setup()
    const headers = { authorization: 'Bearer nope' }
    const cases = [
      await app.inject({ method: 'POST', url: RELAYS, headers: { ...headers, 'content-type': 'application/json' }, payload: '{"id":' }),
      await app.inject({ method: 'POST', url: RELAYS, headers: { ...headers, 'content-type': 'text/plain' }, payload: 'hi' }),
      await post(app, { id: 42 }, headers),
      await post(app, { ...validBody(), pad: 'x'.repeat(100_000) }, headers),
    ]
    assert.deepEqual(
      cases.map((r) => r.statusCode),
      [401, 401, 401, 401]
    )
    assert.deepEqual(await store.list(), [])
  })

  it('accepts the scheme name case-insensitively', async () => {
    const { app } = await setup()
    const res = await post(app, validBody(), { authorization: `bearer ${SECRET}` })
    assert.equal(res.statusCode, 200, res.body)
  })
})

describe('throttling failed authentications', () => {
  it('answers 429 to a source IP after N failures a minute, even with the right secret; other IPs are unaffected', async () => {
    const { app, store } = await setup({ authFailuresPerMinute: 3 })
    const from = (remoteAddress: string, headers: Record<string, string>) =>
      app.inject({ method: 'POST', url: RELAYS, remoteAddress, headers, payload: validBody() })
    for (let i = 0; i < 3; i++) assert.equal((await from('198.51.100.9', { authorization: `Bearer guess-${i}` })).statusCode, 401)
    const throttled = await from('198.51.100.9', { authorization: 'Bearer guess-3' })
    assert.equal(throttled.statusCode, 429, throttled.body)
    assert.ok(Number(throttled.headers['retry-after']) >= 1 && Number(throttled.headers['retry-after']) <= 60, String(throttled.headers['retry-after']))
    assert.equal(throttled.json().error, 'Too Many Requests')
    assert.match(throttled.json().message, /too many failed authentications/)
    // the secret is not even compared while throttled, so guessing stops here
    assert.equal((await from('198.51.100.9', AUTH)).statusCode, 429)
    const del = await app.inject({ method: 'DELETE', url: `${RELAYS}/x`, remoteAddress: '198.51.100.9', headers: AUTH })
    assert.equal(del.statusCode, 429)
    assert.deepEqual(await store.list(), [])
    assert.equal((await from('198.51.100.10', AUTH)).statusCode, 200)
    // GET needs no authentication and is never throttled
    assert.equal((await app.inject({ method: 'GET', url: RELAYS, remoteAddress: '198.51.100.9' })).statusCode, 200)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    assert.match(metrics, /^pos_relay_discovery_registrations_total\{result="throttled"\} 2$/m)
  })

  it('successful authentications do not count, and 0 turns throttling off', async () => {
    const counted = await setup({ authFailuresPerMinute: 2 })
    for (let i = 0; i < 5; i++) assert.equal((await post(counted.app, validBody())).statusCode, 200)
    const off = await setup({ authFailuresPerMinute: 0 })
    for (let i = 0; i < 70; i++) assert.equal((await post(off.app, validBody(), { authorization: 'Bearer nope' })).statusCode, 401)
  })
})
