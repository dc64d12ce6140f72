// What the protocol vector generators (scripts/protocol-vectors.ts) share: deterministic ids and encodings.
import { createHash } from 'node:crypto'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'

export const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest()

/** Deterministic Ed25519 peer ids (the seed is sha256 of a label), so the vectors never change by themselves. */
export async function peerId (label: string): Promise<string> {
  return peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', sha256(`pos-relay protocol vectors: ${label}`))).toString()
}

export const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n'
export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
