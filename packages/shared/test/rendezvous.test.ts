import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { compareUtf8, rankRelays, rendezvousScore, topRelays } from '../src/rendezvous.ts'

const A = '12D3KooWGTT9QsbssEwn88dneQpv7Agw8MfFvS9jvdZ3V9GrqHNh'
const B = '12D3KooWAVjAAKKvSEKMrYNrkBmfwTaWLMtKJ8UyaQrZPNH9udNS'
const C = '12D3KooWLm1DZ3neUeQYQqGukqMC4SgdCrv7J8uADqiTAwCYM4Ay'
const relays = [{ id: 'a', peer_id: A }, { id: 'b', peer_id: B }, { id: 'c', peer_id: C }]

describe('rendezvous ranking', () => {
  // expected values computed independently (Python hashlib) from the rule in docs/protocol-vectors
  it('scores are the first 8 bytes, big-endian, of sha256(relay peer_id || 0x00 || key)', () => {
    assert.equal(rendezvousScore(A, C), 0x474ad48e6e54e88fn)
    assert.equal(rendezvousScore(B, C), 0xd21609ee06ea221bn)
    assert.equal(rendezvousScore(C, 'é-key'), 0xda0f37a3263c87ben) // the key is hashed as UTF-8
  })

  it('ranks highest score first', () => {
    assert.deepEqual(rankRelays(relays, C).map((r) => r.id), ['b', 'a', 'c'])
    assert.deepEqual(rankRelays(relays, 'é-key').map((r) => r.id), ['c', 'a', 'b'])
  })

  it('orders equal scores by the peer_id bytes, not by locale', () => {
    // 'Z' (0x5a) < 'a' (0x61) byte-wise; localeCompare puts 'a' first
    assert.ok(compareUtf8('Z', 'a') < 0)
    assert.ok('Z'.localeCompare('a') > 0)
    // U+FF21 (3 UTF-8 bytes) sorts after U+1F600 in UTF-16 code units but before it in UTF-8 bytes
    assert.ok(compareUtf8('\uff21', '\u{1f600}') < 0)
    assert.ok('\uff21' > '\u{1f600}')
  })

  it('topRelays is the head of rankRelays for every count', () => {
    const many = Array.from({ length: 200 }, (_, i) => ({ id: `r${i}`, peer_id: `peer-${i}` }))
    for (const key of [A, B, 'x']) {
      const ranked = rankRelays(many, key)
      for (const n of [0, 1, 3, 16, 200, 300]) assert.deepEqual(topRelays(many, key, n), ranked.slice(0, n))
    }
  })
})
