import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { newRelayIdentity, peerIdOfKeypairHex } from '@pos-relay/operator'
import { parseConfig, peerIdOfKeypair } from '@pos-relay/relay'

describe('relay identities', () => {
  it('the Secret\'s config is a valid relay config whose key the relay reads as the announced peer id', async () => {
    const { peerId, configJson } = await newRelayIdentity('relays:edge:0')
    const config = parseConfig(JSON.parse(configJson))
    assert.equal(config.id, 'relays:edge:0')
    assert.equal(config.port, 7373)
    assert.equal(config.metrics_port, 9373)
    assert.equal(config.api_url, undefined, 'relays in pods do not self-register')
    assert.equal(peerIdOfKeypair(config.keypair), peerId)
    assert.equal(peerIdOfKeypairHex(config.keypair), peerId)
    assert.match(peerId, /^12D3KooW/)
  })

  it('every identity is new', async () => {
    const a = await newRelayIdentity('x')
    const b = await newRelayIdentity('x')
    assert.notEqual(a.peerId, b.peerId)
  })
})
