import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { seededRandom } from '@pos-relay/testing'
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

interface RankingCase { name: string, key: string, relays: Array<{ id: string, peer_id: string }>, expected: string[] }
const vectors = JSON.parse(readFileSync(new URL('../../../docs/protocol-vectors/ranking.json', import.meta.url), 'utf8')) as { cases: RankingCase[] }

describe('topRelays against the reference ranking', () => {
  it('answers the shared ranking vectors (docs/protocol-vectors/ranking.json) for every count', () => {
    assert.ok(vectors.cases.length > 0)
    for (const c of vectors.cases) {
      for (let n = 0; n <= c.relays.length + 1; n++) {
        assert.deepEqual(topRelays(c.relays, c.key, n).map((r) => r.id), c.expected.slice(0, n), `${c.name}, count ${n}`)
      }
    }
  })

  it('equals rankRelays(...).slice(0, count) on random lists, keys and counts (seeded)', () => {
    const random = seededRandom(17)
    const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
    const text = (alphabet: string, length: number): string => Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('')
    // base58btc ids of the three usual lengths, non-ASCII and empty strings, duplicate peer ids
    const peerId = (): string => {
      const r = random()
      if (r < 0.6) return `12D3KooW${text(B58, 44)}`
      if (r < 0.75) return `Qm${text(B58, 44)}`
      if (r < 0.85) return `16Uiu2${text(B58, 47)}`
      if (r < 0.95) return text('aé\u{1f600}\uff21Z0\u0000', Math.floor(random() * 4))
      return ''
    }
    for (let round = 0; round < 300; round++) {
      const size = Math.floor(random() * (round % 10 === 0 ? 400 : 40))
      const relays = Array.from({ length: size }, (_, i) => ({ id: `r${i}`, peer_id: peerId() }))
      // duplicate some peer ids (equal scores) at random places
      for (let d = 0; d < size / 8; d++) relays[Math.floor(random() * size)]!.peer_id = relays[Math.floor(random() * size)]!.peer_id
      for (let q = 0; q < 4; q++) {
        const key = peerId()
        const count = Math.floor(random() * 20)
        assert.deepEqual(topRelays(relays, key, count), rankRelays(relays, key).slice(0, count), `round ${round}, key ${JSON.stringify(key)}, count ${count}`)
      }
    }
  })

  it('an equal score falls back to the peer id bytes (forced ties through a list with repeated ids)', () => {
    const relays = [{ id: 'x', peer_id: 'b' }, { id: 'y', peer_id: 'a' }, { id: 'z', peer_id: 'b' }, { id: 'w', peer_id: 'a' }]
    for (const n of [1, 2, 3, 4]) assert.deepEqual(topRelays(relays, 'k', n), rankRelays(relays, 'k').slice(0, n))
  })

  it('equal first 4 bytes are decided by the next 4 (scores compared as two uint32)', () => {
    // found by search: for key 'k' the scores are 2752e6757c76f7b2 and 2752e675c15badfb
    assert.equal(rendezvousScore('relay-10385', 'k'), 0x2752e6757c76f7b2n)
    assert.equal(rendezvousScore('relay-89464', 'k'), 0x2752e675c15badfbn)
    const relays = [{ id: 'low', peer_id: 'relay-10385' }, { id: 'high', peer_id: 'relay-89464' }]
    assert.deepEqual(topRelays(relays, 'k', 1).map((r) => r.id), ['high'])
    assert.deepEqual(topRelays([...relays].reverse(), 'k', 1).map((r) => r.id), ['high'])
    assert.deepEqual(topRelays(relays, 'k', 2).map((r) => r.id), ['high', 'low'])
  })
})
