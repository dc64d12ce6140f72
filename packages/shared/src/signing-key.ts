/**
 * An Ed25519 private key that signs with one Node KeyObject made once.
 *
 * @libp2p/crypto's Ed25519PrivateKey.sign() imports the key from JWK for every
 * signature (`crypto.createPrivateKey({ format: 'jwk', … })`). A relay signs
 * two to three times per accepted peer (its Noise handshake payload, the
 * identify signed peer record, the reservation voucher), and the import is
 * most of a signature's cost: 101–118 → 37–43 µs per signature on this machine
 * (one process, interleaved). Ed25519 signatures are deterministic, so the
 * signatures are the very same bytes (tested).
 *
 * No upstream internals: libp2p takes any object with the PrivateKey
 * interface; this one is the upstream key with `sign` replaced.
 */
import { createPrivateKey, sign as nodeSign, type KeyObject } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'

/** `key` itself unless it is an Ed25519 key, else a copy of it whose sign() uses a KeyObject made once */
export function keyObjectSigning<K extends PrivateKey> (key: K): K {
  if (key.type !== 'Ed25519' || key.raw.byteLength !== 64) return key
  const keyObject: KeyObject = createPrivateKey({
    format: 'jwk',
    key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(key.raw.subarray(0, 32)).toString('base64url'), x: Buffer.from(key.raw.subarray(32)).toString('base64url') }
  })
  const fast = Object.create(Object.getPrototypeOf(key)) as K
  Object.assign(fast, key)
  Object.defineProperty(fast, 'sign', {
    enumerable: false,
    value (message: Uint8Array | { subarray: () => Uint8Array }, options?: { signal?: AbortSignal }): Uint8Array {
      options?.signal?.throwIfAborted()
      const bytes = message instanceof Uint8Array ? message : message.subarray()
      const sig = nodeSign(null, bytes, keyObject)
      return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength)
    }
  })
  return fast
}
