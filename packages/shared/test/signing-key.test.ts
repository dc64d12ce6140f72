import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Uint8ArrayList } from 'uint8arraylist'
import { keyObjectSigning } from '@pos-relay/shared'

test('keyObjectSigning: the same signatures as upstream\'s key (Ed25519 is deterministic), the same key otherwise', async () => {
  const key = await generateKeyPair('Ed25519')
  const fast = keyObjectSigning(key)
  assert.notEqual(fast, key)
  for (const size of [0, 1, 100, 4096]) {
    const msg = randomBytes(size)
    const sig = await fast.sign(msg)
    assert.ok(sig instanceof Uint8Array)
    assert.deepEqual(Buffer.from(sig), Buffer.from(await key.sign(msg)), `size ${size}`)
    assert.equal(await key.publicKey.verify(msg, sig), true)
    // a list, as libp2p passes some payloads
    assert.deepEqual(Buffer.from(await fast.sign(new Uint8ArrayList(msg.subarray(0, size >> 1), msg.subarray(size >> 1)) as any)), Buffer.from(sig))
  }
  assert.equal(fast.type, 'Ed25519')
  assert.ok(fast.equals(key) && key.equals(fast))
  assert.ok(fast.publicKey.equals(key.publicKey))
  assert.equal(peerIdFromPrivateKey(fast).toString(), peerIdFromPrivateKey(key).toString())
  assert.deepEqual(privateKeyToProtobuf(fast), privateKeyToProtobuf(key))
  assert.throws(() => fast.sign(randomBytes(8), { signal: AbortSignal.abort() }))
})

test('keyObjectSigning leaves other key types as they are', async () => {
  const key = await generateKeyPair('secp256k1')
  assert.equal(keyObjectSigning(key), key)
})
