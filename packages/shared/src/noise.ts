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
 * Everything else (handshake, small messages through upstream's wasm
 * ChaCha20-Poly1305) is upstream's default crypto, unchanged.
 */
import { createSecretKey, type KeyObject } from 'node:crypto'
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

export const keyObjectCrypto: ICryptoInterface = {
  ...defaultCrypto,
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
