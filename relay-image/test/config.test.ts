import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError, newKeypairHex, parseConfig } from '@pos-relay/relay'
import { MAX_TIMER_SECONDS } from '@pos-relay/shared'

const keypair = await newKeypairHex()
const base = (): Record<string, unknown> => ({ id: 'relay-1', p2p_secret: 's', keypair })
const publicKey = { kty: 'OKP', crv: 'Ed25519', x: 'Rg8gPgfHkjxKjIVB2dO0E7L6yxqZkhpTJyy7zPPoXsw', kid: 'k1', alg: 'EdDSA', use: 'sig' }

test('auth.ticket_keys takes a JWKS of public keys', () => {
  const config = parseConfig({ ...base(), auth: { enabled: true, ticket_keys: { keys: [publicKey] } } })
  assert.deepEqual(config.auth.ticket_keys, { keys: [publicKey] })
})

test('auth.ticket_keys refuses a private key, an empty set and a bare array, saying what to use', () => {
  assert.throws(() => parseConfig({ ...base(), auth: { ticket_keys: { keys: [{ ...publicKey, d: 'secret' }] } } }),
    (err: any) => err instanceof ConfigError && /auth\.ticket_keys\.keys\.0: a private key: relays take public keys only/.test(err.message) && !err.message.includes('secret'))
  assert.throws(() => parseConfig({ ...base(), auth: { ticket_keys: { keys: [] } } }), /at least one public key/)
  assert.throws(() => parseConfig({ ...base(), auth: { ticket_keys: [publicKey] } }), /a JWKS object/)
})

test('durations that end up in a timer are bounded by what setTimeout holds, naming the field; 0 stays unlimited', () => {
  for (const field of ['circuit_duration_seconds', 'circuit_idle_timeout_seconds']) {
    assert.equal(parseConfig({ ...base(), limits: { [field]: MAX_TIMER_SECONDS } }).limits[field as 'circuit_duration_seconds'], MAX_TIMER_SECONDS)
    assert.equal(parseConfig({ ...base(), limits: { [field]: 0 } }).limits[field as 'circuit_duration_seconds'], 0)
    assert.throws(() => parseConfig({ ...base(), limits: { [field]: MAX_TIMER_SECONDS + 1 } }),
      (err: any) => err instanceof ConfigError && new RegExp(`limits\\.${field}: at most ${MAX_TIMER_SECONDS} seconds`).test(err.message))
  }
  // 2,147,484 s was the first value that setTimeout turned into 1 ms
  assert.equal(MAX_TIMER_SECONDS, 2_147_483)
})

test('auth.tiers is discovery\'s tiers format, checked by the same schema', () => {
  const body = { max_reservations: 1, circuit_data_limit_bytes: 10, circuit_duration_seconds: 20, monthly_bytes: 30 }
  // both shapes of discovery's tiers file, normalized to tiers by name
  assert.deepEqual(parseConfig({ ...base(), auth: { tiers: { gold: body } } }).auth.tiers, { gold: { name: 'gold', ...body } })
  assert.deepEqual(parseConfig({ ...base(), auth: { tiers: [{ name: 'gold', ...body }] } }).auth.tiers, { gold: { name: 'gold', ...body } })
  const cases: Array<[unknown, RegExp]> = [
    [{ gold: { ...body, max_reservations: 0 } }, /auth\.tiers\.gold\.max_reservations: must be >= 1/],
    [{ gold: { ...body, circuit_duration_seconds: MAX_TIMER_SECONDS + 1 } }, /auth\.tiers\.gold\.circuit_duration_seconds: must be at most/],
    [{ 'Bad Name': body }, /auth\.tiers\.Bad Name/],
    [{ gold: { ...body, name: 'silver' } }, /auth\.tiers\.gold\.name: tier "gold" has name "silver"/],
    [{}, /auth\.tiers: at least one tier is required/]
  ]
  for (const [tiers, message] of cases) {
    assert.throws(() => parseConfig({ ...base(), auth: { tiers } }), (err: any) => err instanceof ConfigError && message.test(err.message), JSON.stringify(tiers))
  }
})
