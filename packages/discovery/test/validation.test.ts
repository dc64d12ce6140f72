import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { InjectOptions } from 'fastify'
import { listedIds, PEER_A, PEER_B, PEER_C, registration } from './fixtures.ts'
import { AUTH, post, RELAYS, setup, validBody } from './relay-api.ts'

describe('validation', () => {
  const tooManyAddrs = Array.from({ length: 17 }, (_, i) => `/ip4/203.0.113.7/tcp/${4000 + i}`)
  const tooManyMeta = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']))
  // [name, body, field, message pattern]
  const cases: [string, unknown, string | undefined, RegExp][] = [
    ['id is a number', { ...validBody(), id: 42 }, 'id', /expected string/],
    ['id has forbidden characters', { ...validBody(), id: 'relay one' }, 'id', /letters, digits/],
    ['id is empty', { ...validBody(), id: '' }, 'id', /id:/],
    ['id is too long', { ...validBody(), id: 'r'.repeat(129) }, 'id', /id:/],
    ['addrs is a string', { ...validBody(), addrs: '/ip4/203.0.113.7/tcp/4001' }, 'addrs', /expected array/],
    ['addrs is missing', { id: 'relay-1', peer_id: PEER_A }, 'addrs', /addrs/],
    ['peer_id is missing', { id: 'relay-1', addrs: ['/ip4/203.0.113.7/tcp/4001'] }, 'peer_id', /peer_id/],
    ['addrs is empty', { ...validBody(), addrs: [] }, 'addrs', /addrs/],
    ['too many addrs', { ...validBody(), addrs: tooManyAddrs }, 'addrs', /addrs/],
    ['an addr is not a multiaddr', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', 'not-a-multiaddr'] }, 'addrs.1', /must be a multiaddr starting with \/ip4/],
    ['an addr has an invalid IPv4', { ...validBody(), addrs: ['/ip4/999.1.1.1/tcp/4001'] }, 'addrs.0', /not a valid multiaddr/],
    ['an addr is an integer', { ...validBody(), addrs: [4001] }, 'addrs.0', /expected string/],
    ['an addr is a circuit address', { ...validBody(), addrs: [`/ip4/203.0.113.7/tcp/4001/p2p/${PEER_B}/p2p-circuit`] }, 'addrs.0', /p2p-circuit/],
    ['an addr is a bare /p2p', { ...validBody(), addrs: [`/p2p/${PEER_A}`] }, 'addrs.0', /must be a multiaddr starting with \/ip4/],
    ['an addr has no transport', { ...validBody(), addrs: ['/ip4/203.0.113.7'] }, 'addrs.0', /host and a transport/],
    ['an addr belongs to another peer', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', `/ip4/203.0.113.7/tcp/4002/p2p/${PEER_B}`] }, 'addrs.1', new RegExp(PEER_B)],
    ['an addr is the cloud metadata endpoint', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', '/ip4/169.254.169.254/tcp/80'] }, 'addrs.1', /169\.254\.169\.254 is a link-local address/],
    ['an addr is IPv4 link-local mapped into IPv6', { ...validBody(), addrs: ['/ip6/::ffff:169.254.169.254/tcp/80'] }, 'addrs.0', /link-local/],
    ['an addr is 0.0.0.0', { ...validBody(), addrs: ['/ip4/0.0.0.0/tcp/4001'] }, 'addrs.0', /unspecified/],
    ['an addr is ::', { ...validBody(), addrs: ['/ip6/::/tcp/4001'] }, 'addrs.0', /unspecified/],
    ['an addr is IPv6 link-local', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', '/ip4/203.0.113.8/tcp/4001', '/ip6/fe80::1/tcp/4001'] }, 'addrs.2', /link-local/],
    ['an addr is IPv4 multicast', { ...validBody(), addrs: ['/ip4/239.1.2.3/tcp/4001'] }, 'addrs.0', /multicast/],
    ['an addr is IPv6 multicast', { ...validBody(), addrs: ['/ip6/ff02::1/tcp/4001'] }, 'addrs.0', /multicast/],
    ['an addr is the broadcast address', { ...validBody(), addrs: ['/ip4/255.255.255.255/tcp/4001'] }, 'addrs.0', /broadcast/],
    ['an addr is plain UDP', { ...validBody(), addrs: ['/ip4/203.0.113.7/udp/53'] }, 'addrs.0', /UDP other than \/quic-v1/],
    ['an addr is QUIC draft-29', { ...validBody(), addrs: ['/ip4/203.0.113.7/udp/4001/quic'] }, 'addrs.0', /UDP other than \/quic-v1/],
    ['an addr has port 0', { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/0'] }, 'addrs.0', /port 0/],
    ['peer_id is not a PeerId', { ...validBody(), peer_id: 'QmNotAPeerId' }, 'peer_id', /not a valid libp2p PeerId/],
    ['peer_id is a number', { ...validBody(), peer_id: 7 }, 'peer_id', /expected string/],
    ['an unknown top-level key', { ...validBody(), ttl: 9999 }, 'ttl', /Unrecognized key/],
    ['meta has too many entries', { ...validBody(), meta: tooManyMeta }, 'meta', /at most 16/],
    ['a meta value is not a string', { ...validBody(), meta: { region: 1 } }, 'meta.region', /expected string/],
    ['a meta value is too long', { ...validBody(), meta: { region: 'x'.repeat(257) } }, 'meta.region', /meta.region/],
    ['the body is a JSON array', [validBody()], undefined, /expected object/],
  ]

  for (const [name, body, field, message] of cases) {
    it(`400 when ${name}, storing nothing`, async () => {
      const { app, store } = await setup()
      await store.register(registration('relay-1', PEER_C), 60_000) // same id as the bad request
      const snapshot = await store.list()
      const res = await post(app, body)
      assert.equal(res.statusCode, 400, res.body)
      const error = res.json()
      assert.equal(error.error, 'Bad Request')
      assert.equal(error.statusCode, 400)
      assert.equal(error.field, field)
      assert.match(error.message, message)
      assert.deepEqual(await store.list(), snapshot)
    })
  }

  const transportCases: [string, InjectOptions, number, RegExp][] = [
    ['malformed JSON', { headers: { 'content-type': 'application/json' }, payload: '{"id": "relay-1", ' }, 400, /not valid JSON/],
    ['an empty JSON body', { headers: { 'content-type': 'application/json' }, payload: '' }, 400, /body/],
    ['text/plain', { headers: { 'content-type': 'text/plain' }, payload: JSON.stringify(validBody()) }, 415, /content type/],
    ['a form body', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'id=relay-1' }, 415, /content type/],
    ['a body over 64 KiB', { payload: { ...validBody(), meta: { pad: 'x'.repeat(256) }, extra: 'x'.repeat(70_000) } }, 413, /65536 bytes/],
  ]

  for (const [name, opts, status, message] of transportCases) {
    it(`${status} for ${name}, storing nothing`, async () => {
      const { app, store } = await setup()
      const res = await app.inject({ method: 'POST', url: RELAYS, ...opts, headers: { ...AUTH, ...opts.headers } })
      assert.equal(res.statusCode, status, res.body)
      const error = res.json()
      assert.equal(error.statusCode, status)
      assert.equal(typeof error.error, 'string')
      assert.equal(error.field, undefined)
      assert.match(error.message, message)
      assert.deepEqual(await store.list(), [])
    })
  }

  it('accepts loopback, private and QUIC v1 addrs by default', async () => {
    const { app } = await setup()
    const addrs = ['/ip4/127.0.0.1/tcp/7373', '/ip4/10.0.0.5/tcp/7373', '/ip4/192.168.1.5/udp/7373/quic-v1', '/ip6/::1/tcp/7373', '/dns4/localhost/tcp/7373']
    const res = await post(app, { ...validBody(), addrs })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.json().addrs.length, 5)
  })

  it('refuses loopback and private addrs with publicAddressesOnly, storing nothing', async () => {
    const { app, store } = await setup({ publicAddressesOnly: true })
    for (const [addr, what] of [
      ['/ip4/127.0.0.1/tcp/7373', /loopback/],
      ['/ip4/10.0.0.5/tcp/7373', /private/],
      ['/ip4/172.20.0.5/tcp/7373', /private/],
      ['/ip4/192.168.1.5/udp/7373/quic-v1', /private/],
      ['/ip4/100.64.0.1/tcp/7373', /private/],
      ['/ip6/::1/tcp/7373', /loopback/],
      ['/ip6/fd00::1/tcp/7373', /private/],
      ['/dns4/localhost/tcp/7373', /loopback/],
    ] as const) {
      const res = await post(app, { ...validBody(), addrs: ['/ip4/203.0.113.7/tcp/4001', addr] })
      assert.equal(res.statusCode, 400, `${addr}: ${res.body}`)
      assert.equal(res.json().field, 'addrs.1')
      assert.match(res.json().message, what)
      assert.match(res.json().message, /public-addresses-only/)
    }
    assert.deepEqual(await store.list(), [])
    assert.equal((await post(app, validBody())).statusCode, 200)
  })

  it('honours bodyLimitBytes', async () => {
    const { app, store } = await setup({ bodyLimitBytes: 1024 })
    const small = await post(app, validBody())
    assert.equal(small.statusCode, 200)
    const big = await post(app, { ...validBody('relay-2'), meta: { a: 'x'.repeat(200), b: 'x'.repeat(200), c: 'x'.repeat(200), d: 'x'.repeat(200) } })
    assert.equal(big.statusCode, 413)
    assert.equal(big.json().error, 'Payload Too Large')
    assert.deepEqual(await listedIds(store), ['relay-1'])
  })
})
