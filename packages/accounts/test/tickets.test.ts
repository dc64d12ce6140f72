import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import {
  generateTicketKey,
  parseTicketKeys,
  TicketError,
  TicketIssuer,
  TicketVerifier,
  ticketKeysUrl,
  type JWK,
  type TicketKey,
  type TicketRejection,
} from '@pos-relay/accounts'
import { decodeProtectedHeader, decodeJwt } from 'jose'
import { claims, hs256WithPublicKey, PEER_A, PEER_B, signingInput, signRaw } from './fixtures.ts'

async function rejects (verifier: TicketVerifier, token: unknown, reason: TicketRejection, peer: unknown = PEER_A): Promise<void> {
  await assert.rejects(verifier.verify(token as string, peer as string), (err: unknown) => {
    assert.ok(err instanceof TicketError, `not a TicketError: ${String(err)}`)
    assert.equal(err.reason, reason, `expected ${reason}, got ${err.reason} (${err.message})`)
    return true
  })
}

let key: TicketKey
let issuer: TicketIssuer
let verifier: TicketVerifier

before(async () => {
  key = await generateTicketKey()
  issuer = await TicketIssuer.create({ keys: [key] })
  verifier = new TicketVerifier({ jwks: issuer.jwks() })
})

describe('ticket keys', () => {
  it('generates an Ed25519 private JWK with a thumbprint kid and alg EdDSA', async () => {
    assert.equal(key.kty, 'OKP')
    assert.equal(key.crv, 'Ed25519')
    assert.equal(key.alg, 'EdDSA')
    assert.match(key.kid, /^[A-Za-z0-9_-]{43}$/)
    assert.match(key.d, /^[A-Za-z0-9_-]{43}$/)
    assert.notEqual((await generateTicketKey()).kid, key.kid)
  })

  it('publishes only public parts', () => {
    const jwks = issuer.jwks()
    assert.deepEqual(jwks, { keys: [{ kty: 'OKP', crv: 'Ed25519', x: key.x, kid: key.kid, alg: 'EdDSA', use: 'sig' }] })
    assert.equal(JSON.stringify(jwks).includes(key.d), false)
  })

  it('parseTicketKeys validates files without echoing key material', async () => {
    assert.deepEqual(parseTicketKeys(JSON.parse(JSON.stringify([key]))), [key])
    for (const bad of [[], {}, 'x', [{ ...key, kty: 'EC' }], [{ ...key, d: undefined }], [{ ...key, x: 'short' }], [key, key]]) {
      assert.throws(() => parseTicketKeys(bad), (err: Error) => {
        assert.match(err.message, /invalid ticket keys/)
        assert.equal(err.message.includes(key.d), false)
        return true
      })
    }
  })

  it('refuses a key whose private part does not match its public part, and bad TTLs', async () => {
    const other = await generateTicketKey()
    await assert.rejects(TicketIssuer.create({ keys: [{ ...key, d: other.d }] }), /does not match/)
    for (const ttlSeconds of [0, -1, 3601, 1.5]) await assert.rejects(TicketIssuer.create({ keys: [key], ttlSeconds }), RangeError)
    assert.equal((await TicketIssuer.create({ keys: [key], ttlSeconds: 3600 })).ttlSeconds, 3600)
  })
})

describe('issue and verify', () => {
  it('issues a 600 s EdDSA JWT bound to the peer, and verifies it', async () => {
    const before = Math.floor(Date.now() / 1000)
    const t = await issuer.issue({ account: 'acc_1', tier: 'pro', peer: PEER_A })
    const header = decodeProtectedHeader(t.ticket)
    assert.deepEqual(header, { alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
    const c = await verifier.verify(t.ticket, PEER_A)
    assert.deepEqual(Object.keys(c).sort(), ['account', 'exp', 'iat', 'jti', 'sub', 'tier'])
    assert.equal(c.account, 'acc_1')
    assert.equal(c.tier, 'pro')
    assert.equal(c.sub, PEER_A)
    assert.equal(c.jti, t.jti)
    assert.equal(c.exp - c.iat, 600)
    assert.ok(c.iat >= before && c.iat <= before + 2)
    assert.equal(t.expires_at, new Date(c.exp * 1000).toISOString())
    assert.ok(t.ticket.length < 1024, `ticket is ${t.ticket.length} bytes`)
    const second = await issuer.issue({ account: 'acc_1', tier: 'pro', peer: PEER_A })
    assert.notEqual(second.jti, t.jti, 'jti is unique')
  })

  it('rejects bad issue input', async () => {
    for (const input of [{ account: '', tier: 'free', peer: PEER_A }, { account: 'a', tier: 'free', peer: '' }, { account: 'a', tier: 5, peer: PEER_A }]) {
      await assert.rejects(issuer.issue(input as never), TypeError)
    }
  })
})

describe('rejections', () => {
  it('wrong peer', async () => {
    const t = await issuer.issue({ account: 'acc_1', tier: 'free', peer: PEER_A })
    await rejects(verifier, t.ticket, 'wrong_peer', PEER_B)
    await rejects(verifier, t.ticket, 'wrong_peer', '')
    await rejects(verifier, t.ticket, 'wrong_peer', null)
  })

  it('alg none (no signature, and with a signature appended)', async () => {
    const input = signingInput({ alg: 'none', kid: key.kid, typ: 'JWT' }, claims())
    await rejects(verifier, `${input}.`, 'bad_algorithm')
    const real = await issuer.issue({ account: 'acc_1', tier: 'free', peer: PEER_A })
    await rejects(verifier, `${input}.${real.ticket.split('.')[2]}`, 'bad_algorithm')
    for (const alg of ['None', 'NONE', 'nOnE']) await rejects(verifier, `${signingInput({ alg, kid: key.kid }, claims())}.`, 'bad_algorithm')
  })

  it('HS256 signed with the public key (raw bytes, the x string, the JWK JSON)', async () => {
    const pub = issuer.jwks().keys[0] as JWK
    for (const secret of [Buffer.from(key.x, 'base64url'), key.x, JSON.stringify(pub)]) {
      await rejects(verifier, hs256WithPublicKey(secret, { kid: key.kid, typ: 'JWT' }, claims()), 'bad_algorithm')
    }
  })

  it('every other algorithm, and a missing or ill-typed alg', async () => {
    for (const alg of ['Ed25519', 'Ed448', 'ES256', 'RS256', 'PS256', 'HS512', 'eddsa', '', 5, null, ['EdDSA'], { EdDSA: true }, undefined]) {
      const token = await signRaw(key, { alg, kid: key.kid } as never, claims()).catch(() => `${signingInput({ alg, kid: key.kid }, claims())}.${'A'.repeat(86)}`)
      await rejects(verifier, token, 'bad_algorithm')
    }
  })

  it('a key it does not know (other kid) and another key under our kid', async () => {
    const other = await generateTicketKey()
    const otherIssuer = await TicketIssuer.create({ keys: [other] })
    await rejects(verifier, (await otherIssuer.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket, 'unknown_key')
    const impostor = await TicketIssuer.create({ keys: [{ ...other, kid: key.kid }] })
    await rejects(verifier, (await impostor.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket, 'bad_signature')
    await rejects(verifier, await signRaw(key, {}, claims()), 'unknown_key') // no kid at all
    await rejects(verifier, await signRaw(key, { kid: 5 }, claims()), 'unknown_key')
  })

  it('a changed payload or header under the original signature', async () => {
    const t = await issuer.issue({ account: 'acc_1', tier: 'free', peer: PEER_A })
    const [h, , s] = t.ticket.split('.')
    const forged = { ...decodeJwt(t.ticket), tier: 'unlimited' }
    await rejects(verifier, `${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}`, 'bad_signature')
    const header2 = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: key.kid })).toString('base64url')
    await rejects(verifier, `${header2}.${t.ticket.split('.')[1]}.${s}`, 'bad_signature')
  })

  it('expired (short-lived ticket from the past; verifier clock in the future) and clock tolerance', async () => {
    const past = await TicketIssuer.create({ keys: [key], ttlSeconds: 60, now: () => new Date(Date.now() - 2 * 3600_000) })
    await rejects(verifier, (await past.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket, 'expired')
    const t = await issuer.issue({ account: 'a', tier: 'free', peer: PEER_A })
    const later = new TicketVerifier({ jwks: issuer.jwks(), now: () => new Date(Date.now() + 601_000 + 30_000), clockToleranceSeconds: 30 })
    await rejects(later, t.ticket, 'expired')
    const justInside = new TicketVerifier({ jwks: issuer.jwks(), now: () => new Date(Date.now() + 601_000 + 20_000), clockToleranceSeconds: 30 })
    assert.equal((await justInside.verify(t.ticket, PEER_A)).jti, t.jti)
  })

  it('not yet valid: nbf or iat in the future', async () => {
    const now = Math.floor(Date.now() / 1000)
    await rejects(verifier, await signRaw(key, { kid: key.kid }, claims({ nbf: now + 600 })), 'not_yet_valid')
    await rejects(verifier, await signRaw(key, { kid: key.kid }, claims({ iat: now + 600, exp: now + 1200 })), 'not_yet_valid')
    assert.ok(await verifier.verify(await signRaw(key, { kid: key.kid }, claims({ nbf: now + 10 })), PEER_A), 'within tolerance')
  })

  it('missing or ill-typed claims, and a lifetime over one hour', async () => {
    const now = Math.floor(Date.now() / 1000)
    const cases: Record<string, unknown>[] = [
      { account: undefined },
      { tier: undefined },
      { sub: undefined },
      { jti: undefined },
      { iat: undefined },
      { exp: undefined },
      { account: 5 },
      { account: '' },
      { tier: ['free'] },
      { sub: { id: PEER_A } },
      { jti: null },
      { iat: '1700000000' },
      { exp: String(now + 600) },
      { iat: now + 0.5 },
      { exp: now + 3601 },
      { iat: now - 10, exp: now + 3600 },
      { exp: now - 1, iat: now }, // exp before iat
      { exp: now, iat: now },
      { nbf: 'soon' },
    ]
    for (const over of cases) {
      await rejects(verifier, await signRaw(key, { kid: key.kid }, claims(over, now)), 'bad_claims')
    }
    // the payload is not a claims object at all
    for (const payload of ['[1,2]', '"str"', '42', 'null', 'not json']) {
      await rejects(verifier, await signRaw(key, { kid: key.kid }, payload), 'malformed')
    }
  })

  it('truncated, padded, garbage, oversized and non-string tokens', async () => {
    const t = (await issuer.issue({ account: 'acc_1', tier: 'free', peer: PEER_A })).ticket
    for (let cut = 0; cut < t.length; cut += 7) await rejects(verifier, t.slice(0, cut), 'malformed')
    await rejects(verifier, t.slice(0, -1), 'malformed')
    await rejects(verifier, t + 'A', 'malformed')
    await rejects(verifier, `${t}.${t.split('.')[2]}`, 'malformed')
    await rejects(verifier, t.replaceAll('.', ''), 'malformed')
    await rejects(verifier, ` ${t}`, 'malformed')
    await rejects(verifier, `${t}\n`, 'malformed')
    await rejects(verifier, 'Bearer ' + t, 'malformed')
    await rejects(verifier, 'garbage', 'malformed')
    await rejects(verifier, '...', 'malformed')
    await rejects(verifier, 'a.b.c', 'malformed')
    await rejects(verifier, `${Buffer.from('{not json').toString('base64url')}.e30.${'A'.repeat(86)}`, 'malformed')
    await rejects(verifier, 'x'.repeat(5000), 'malformed')
    const big = await signRaw(key, { kid: key.kid }, claims({ pad: 'x'.repeat(4000) }))
    await rejects(verifier, big, 'malformed')
    // eslint-disable-next-line no-new-wrappers -- a String object is one of the malformed inputs under test
    for (const junk of [undefined, null, 42, {}, [], Buffer.from(t), new String(t)]) await rejects(verifier, junk, 'malformed')
  })
})

describe('key rotation', () => {
  it('old tickets verify while the old key is published; new tickets use the new kid', async () => {
    const k1 = await generateTicketKey()
    const k2 = await generateTicketKey()
    const before = await TicketIssuer.create({ keys: [k1] })
    const oldTicket = (await before.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket
    const during = await TicketIssuer.create({ keys: [k2, k1] })
    assert.equal(during.kid, k2.kid)
    const newTicket = (await during.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket
    assert.equal(decodeProtectedHeader(newTicket).kid, k2.kid)
    assert.deepEqual(during.jwks().keys.map((k) => k.kid), [k2.kid, k1.kid])
    const v = new TicketVerifier({ jwks: during.jwks() })
    assert.ok(await v.verify(oldTicket, PEER_A))
    assert.ok(await v.verify(newTicket, PEER_A))
    const afterRetire = new TicketVerifier({ jwks: (await TicketIssuer.create({ keys: [k2] })).jwks() })
    await rejects(afterRetire, oldTicket, 'unknown_key')
    assert.ok(await afterRetire.verify(newTicket, PEER_A))
  })
})

describe('JWKS over HTTP', () => {
  let server: Server
  let served: { keys: JWK[] } = { keys: [] }
  let status = 200
  let fetches = 0
  let url: string

  before(async () => {
    server = createServer((req, res) => {
      fetches++
      if (req.url !== '/api/p2p/ticket-keys') {
        res.writeHead(404).end()
        return
      }
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(served))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = ticketKeysUrl(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it('fetches, caches, refreshes once on an unknown kid (bounded) and survives discovery outages', async () => {
    const k1 = await generateTicketKey()
    const k2 = await generateTicketKey()
    const i1 = await TicketIssuer.create({ keys: [k1] })
    const i2 = await TicketIssuer.create({ keys: [k2, k1] })
    served = i1.jwks()
    fetches = 0
    const v = new TicketVerifier({ jwksUrl: url, minRefreshIntervalSeconds: 0.3 })
    const t1 = (await i1.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket
    assert.ok(await v.verify(t1, PEER_A))
    assert.ok(await v.verify(t1, PEER_A))
    assert.equal(fetches, 1, 'cached')

    // rotation: discovery now publishes k2+k1; a k2 ticket makes the verifier refresh once
    served = i2.jwks()
    await new Promise((r) => setTimeout(r, 350))
    const t2 = (await i2.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket
    const results = await Promise.all(Array.from({ length: 20 }, () => v.verify(t2, PEER_A)))
    assert.equal(results.length, 20)
    assert.equal(fetches, 2, 'concurrent verifications share one refresh')

    // a flood of unknown kids costs at most one fetch per interval
    const stranger = await TicketIssuer.create({ keys: [await generateTicketKey()] })
    const unknown = (await stranger.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket
    await new Promise((r) => setTimeout(r, 350))
    for (let i = 0; i < 50; i++) await rejects(v, unknown, 'unknown_key')
    assert.equal(fetches, 3)

    // discovery answers 500, then goes away: known keys keep verifying
    status = 500
    await new Promise((r) => setTimeout(r, 350))
    await rejects(v, unknown, 'unknown_key')
    assert.ok(await v.verify(t1, PEER_A))
    assert.ok(await v.verify(t2, PEER_A))
    status = 200
  })

  it('a verifier that never reached discovery rejects with unknown_key (never hangs or crashes)', async () => {
    const v = new TicketVerifier({ jwksUrl: 'http://127.0.0.1:1/api/p2p/ticket-keys', fetchTimeoutMs: 500 })
    const t = (await issuer.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket
    await rejects(v, t, 'unknown_key')
  })

  it('a key set that never ends is refused at 256 KiB while reading, not buffered whole', async () => {
    const endless = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"keys":[')
      const timer = setInterval(() => res.write(' '.repeat(16 * 1024)), 1)
      res.on('close', () => clearInterval(timer))
    })
    await new Promise<void>((resolve) => endless.listen(0, '127.0.0.1', resolve))
    try {
      const v = new TicketVerifier({ jwksUrl: `http://127.0.0.1:${(endless.address() as AddressInfo).port}/api/p2p/ticket-keys`, fetchTimeoutMs: 20_000 })
      await assert.rejects(v.refresh(), /exceeds 262144 bytes/)
    } finally {
      endless.close()
    }
  })

  it('ignores non-Ed25519 and malformed entries in the key set', async () => {
    served = { keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: key.kid }, { kty: 'OKP', crv: 'Ed25519', x: 'bad', kid: 'x' }, ...issuer.jwks().keys] as JWK[] }
    const v = new TicketVerifier({ jwksUrl: url })
    assert.ok(await v.verify((await issuer.issue({ account: 'a', tier: 'free', peer: PEER_A })).ticket, PEER_A))
    await rejects(v, hs256WithPublicKey('secret', { kid: key.kid }, claims()), 'bad_algorithm')
  })

  it('needs jwks or jwksUrl and refuses bad static keys', () => {
    assert.throws(() => new TicketVerifier({}), TypeError)
    assert.throws(() => new TicketVerifier({ jwks: { keys: [{ kty: 'oct', k: 'abc' }] } }), TypeError)
    assert.throws(() => new TicketVerifier({ jwksUrl: 'not a url' }))
  })
})
