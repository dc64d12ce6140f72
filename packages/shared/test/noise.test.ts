import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { keyObjectCrypto } from '@pos-relay/shared/noise'

const bytes = (x: Uint8Array | Uint8ArrayList): Buffer => Buffer.from(x instanceof Uint8Array ? x : x.subarray())

test('key-object ChaCha20-Poly1305 gives exactly upstream\'s ciphertexts and decrypts them, for every message size', () => {
  const k = randomBytes(32)
  for (const size of [0, 1, 100, 1199, 1200, 1201, 16 * 1024, 65519]) {
    for (let n = 0; n < 3; n++) {
      const nonce = Buffer.alloc(12); nonce.writeUInt32LE(n, 4)
      const ad = randomBytes(n * 8)
      const plaintext = randomBytes(size)
      const ours = bytes(keyObjectCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
      assert.deepEqual(ours, bytes(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)), `size ${size}`)
      // a list input, as noise passes when a message spans buffers
      const list = new Uint8ArrayList(plaintext.subarray(0, size >> 1), plaintext.subarray(size >> 1))
      assert.deepEqual(bytes(keyObjectCrypto.chaCha20Poly1305Encrypt(list, nonce, ad, k)), ours)
      assert.deepEqual(bytes(keyObjectCrypto.chaCha20Poly1305Decrypt(Buffer.from(ours), nonce, ad, k)), plaintext)
      assert.deepEqual(bytes(defaultCrypto.chaCha20Poly1305Decrypt(Buffer.from(ours), nonce, ad, k)), plaintext)
    }
  }
})

test('a tampered message or another key is refused', () => {
  const k = randomBytes(32)
  const nonce = Buffer.alloc(12)
  const sealed = Buffer.from(bytes(keyObjectCrypto.chaCha20Poly1305Encrypt(randomBytes(4096), nonce, Buffer.alloc(0), k)))
  sealed.writeUInt8(sealed.readUInt8(10) ^ 1, 10)
  assert.throws(() => keyObjectCrypto.chaCha20Poly1305Decrypt(sealed, nonce, Buffer.alloc(0), k))
  sealed.writeUInt8(sealed.readUInt8(10) ^ 1, 10)
  assert.throws(() => keyObjectCrypto.chaCha20Poly1305Decrypt(sealed, nonce, Buffer.alloc(0), randomBytes(32)))
  assert.equal(bytes(keyObjectCrypto.chaCha20Poly1305Decrypt(sealed, nonce, Buffer.alloc(0), k)).length, 4096)
})

test('X25519 with kept KeyObjects: the same shared secrets as upstream\'s, either side; keys from elsewhere still work', () => {
  for (let n = 0; n < 20; n++) {
    const a = keyObjectCrypto.generateX25519KeyPair()
    const b = defaultCrypto.generateX25519KeyPair()
    assert.equal(a.publicKey.byteLength, 32)
    assert.equal(a.privateKey.byteLength, 32)
    const ours = bytes(keyObjectCrypto.generateX25519SharedKey(a.privateKey, b.publicKey))
    assert.deepEqual(ours, bytes(defaultCrypto.generateX25519SharedKey(a.privateKey, b.publicKey)), 'our key pair, upstream\'s DH')
    assert.deepEqual(ours, bytes(defaultCrypto.generateX25519SharedKey(b.privateKey, a.publicKey)), 'the other side agrees')
    // a private key not generated here (e.g. from a seed, or a copy) takes upstream's path
    assert.deepEqual(bytes(keyObjectCrypto.generateX25519SharedKey(Buffer.from(a.privateKey), b.publicKey)), ours)
    assert.deepEqual(bytes(keyObjectCrypto.generateX25519SharedKey(b.privateKey, new Uint8ArrayList(a.publicKey.subarray(0, 7), a.publicKey.subarray(7)))), ours)
  }
})
