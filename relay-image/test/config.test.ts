import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError, newKeypairHex, parseConfig } from '@pos-relay/relay'

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
