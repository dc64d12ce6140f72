import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateTicketKey, publicTicketKey } from '@pos-relay/accounts'
import { authEvent, checkPublicJwks, checkTiers, computeDesired } from '@pos-relay/operator'
import { node, observe, pool } from './fixtures.ts'

describe('checkPublicJwks: what a pool may mount as its ticket keys', () => {
  it('accepts a public JWKS as `pos-relay keys public` prints it', async () => {
    const key = await generateTicketKey()
    assert.equal(checkPublicJwks(JSON.stringify({ keys: [publicTicketKey(key)] })), undefined)
  })

  it('refuses a private key (a JWK with "d"), naming the key and the way to get the public one, without echoing it', async () => {
    const key = await generateTicketKey()
    const why = checkPublicJwks(JSON.stringify({ keys: [publicTicketKey(key), key] }))
    assert.match(why!, /private key \(keys\[1\] has "d"\).*pos-relay keys public/)
    assert.ok(!why!.includes(key.d), 'the private key is never echoed')
  })

  it('refuses discovery\'s signing keys file (an array), non-JSON, an empty set and keys the relays cannot use', async () => {
    const key = await generateTicketKey()
    assert.match(checkPublicJwks(JSON.stringify([key]))!, /signing keys file/)
    assert.match(checkPublicJwks('not json')!, /not JSON/)
    assert.match(checkPublicJwks('{"keys":[]}')!, /at least one key/)
    assert.match(checkPublicJwks(JSON.stringify({ keys: [{ kty: 'RSA', n: 'x', e: 'AQAB', kid: 'r' }] }))!, /not usable by the relays/)
  })
})

describe('checkTiers: what a pool may mount as its tiers', () => {
  it('accepts the tiers discovery takes (--tiers-file format)', () => {
    assert.equal(checkTiers(JSON.stringify({ free: { max_reservations: 2, circuit_data_limit_bytes: 1048576, circuit_duration_seconds: 120, monthly_bytes: 1073741824 } })), undefined)
  })

  it('refuses non-JSON and a document the relay would refuse at start, saying which field', () => {
    assert.match(checkTiers('{not json')!, /not JSON/)
    const why = checkTiers(JSON.stringify({ free: { max_reservations: -1 } }))
    assert.match(why!, /not a valid tiers document: .*max_reservations/)
  })
})

describe('authEvent: one Warning when spec.auth becomes unusable, one Normal when it is fixed', () => {
  const nodes = [node('n1')]
  const p = pool({ replicas: 1, auth: { required: true, ticketKeysSecretRef: { name: 'keys' } } })
  it('Warning on the first reconcile with the problem, none while it persists, Normal when it is gone', () => {
    const bad = computeDesired(observe({ pool: p, nodes, authProblem: 'Secret relays/keys not found' }))
    const first = authEvent(p, bad)
    assert.equal(first?.type, 'Warning')
    assert.equal(first?.reason, 'AuthSecretInvalid')
    assert.match(first!.note!, /relays\/keys not found/)
    const after = { ...p, status: bad.status }
    assert.equal(authEvent(after, computeDesired(observe({ pool: after, nodes, authProblem: 'Secret relays/keys not found' }))), undefined)
    const fixed = authEvent(after, computeDesired(observe({ pool: after, nodes })))
    assert.equal(fixed?.type, 'Normal')
    assert.equal(fixed?.reason, 'AuthSecretValid')
  })
})
