/**
 * Noise with the session keys turned into Node KeyObjects once.
 *
 * @chainsafe/libp2p-noise calls `crypto.createCipheriv(chacha20-poly1305,
 * key, …)` for every transport message (up to 65519 bytes) with the raw key
 * bytes; Node then builds a KeyObject for the key each time. A relay does
 * that twice per relayed message (decrypt on one hop, encrypt on the other):
 * in its CPU profile `getKeyObjectSlots` + `getSlots` were ~17 % of the busy
 * time. Passing a KeyObject made once per session key does the same
 * encryption (the output is identical, tested) for less: 44 → 36 µs per
 * 65519-byte message on this machine, and relay CPU for 3 × 256 MiB relayed
 * between rust peers fell from 10.9 / 9.5 s to 7.2 / 6.9 s (two interleaved
 * runs each, loopback).
 *
 * Used by the relay, the client SDK, test and bench peers (not by the bench's
 * "plain upstream relay", which stays upstream's).
 *
 * The handshake's X25519 keys likewise: upstream exports each key pair it
 * generates to bytes and imports the private key again (a DER parse) for every
 * Diffie-Hellman, three per XX handshake. Here a key pair generated for Noise
 * keeps its private KeyObject (a WeakMap keyed by the private key bytes
 * upstream hands back to us), so only the remote public key is imported. Same
 * shared secrets (tested against upstream's).
 *
 * Everything else (small messages through upstream's wasm ChaCha20-Poly1305,
 * hashing, HKDF) is upstream's default crypto, unchanged.
 */
import { createPublicKey, createSecretKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { noise as upstreamNoise, type NoiseInit, type ICryptoInterface } from '@chainsafe/libp2p-noise'
import { defaultCrypto, nodeCrypto } from '@chainsafe/libp2p-noise/crypto'

/** upstream's threshold: below it its wasm implementation beats Node's per-call setup */
const NODE_CRYPTO_MIN_BYTES = 1200

/** one KeyObject per session key; the key bytes are never mutated by noise (no rekey in libp2p) */
const keyObjects = new WeakMap<Uint8Array, KeyObject>()
function keyObjectOf (k: Uint8Array): Uint8Array {
  let ko = keyObjects.get(k)
  if (ko == null) {
    ko = createSecretKey(k)
    keyObjects.set(k, ko)
  }
  // createCipheriv accepts a KeyObject where upstream passes the bytes
  return ko as unknown as Uint8Array
}

/** DER prefixes of an X25519 SubjectPublicKeyInfo and PKCS#8 private key (upstream's X25519_PREFIX, PKCS8_PREFIX) */
const X25519_SPKI_PREFIX = Buffer.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00])
const X25519_PKCS8_PREFIX_LENGTH = 16
/** private key bytes of a key pair generated here → its KeyObject */
const x25519PrivateKeys = new WeakMap<Uint8Array, KeyObject>()

export const keyObjectCrypto: ICryptoInterface = {
  ...defaultCrypto,
  generateX25519KeyPair () {
    const { publicKey, privateKey } = generateKeyPairSync('x25519')
    const raw = privateKey.export({ type: 'pkcs8', format: 'der' }).subarray(X25519_PKCS8_PREFIX_LENGTH)
    x25519PrivateKeys.set(raw, privateKey)
    return { publicKey: publicKey.export({ type: 'spki', format: 'der' }).subarray(X25519_SPKI_PREFIX.length), privateKey: raw }
  },
  generateX25519SharedKey (privateKey, publicKey) {
    const key = privateKey instanceof Uint8Array ? x25519PrivateKeys.get(privateKey) : undefined
    if (key == null) return defaultCrypto.generateX25519SharedKey(privateKey, publicKey)
    const pub = publicKey instanceof Uint8Array ? publicKey : publicKey.subarray()
    return diffieHellman({ privateKey: key, publicKey: createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, pub]), type: 'spki', format: 'der' }) })
  },
  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    if (plaintext.byteLength < NODE_CRYPTO_MIN_BYTES) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    return nodeCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, keyObjectOf(k))
  },
  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < NODE_CRYPTO_MIN_BYTES) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    return nodeCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, keyObjectOf(k), dst)
  }
}

export function noise (init: NoiseInit = {}): ReturnType<typeof upstreamNoise> {
  return upstreamNoise({ crypto: keyObjectCrypto, ...init })
}
