/**
 * Relay identities: an Ed25519 key per slot, stored in the slot's Secret as
 * the relay's config file. The key encoding is the relay's own (`keypair` =
 * hex of the protobuf-encoded private key, as `pos-relay init` writes and
 * rust-libp2p's `Keypair::to_protobuf_encoding` reads); the tests check it
 * against @pos-relay/relay's `parseConfig` and `peerIdOfKeypair`. Done here with
 * @libp2p/crypto directly so the operator process does not load the relay
 * server (libp2p and its transports) just to make keys.
 */
import { randomBytes } from 'node:crypto'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { RELAY_CONTAINER_PORT, RELAY_METRICS_PORT } from './api.js'

export interface RelayIdentity {
  peerId: string
  /** the relay config file (JSON) for `pos-relay run --config` */
  configJson: string
}

/**
 * The private key in an identity Secret's config (base64 of the config JSON, as stored in the
 * Secret's data), when it is the key of `peerId`; undefined otherwise (missing, unparsable,
 * another key).
 */
export function keyOfIdentityConfig (configBase64: string | undefined, peerId: string): PrivateKey | undefined {
  if (configBase64 == null) return undefined
  try {
    const config = JSON.parse(Buffer.from(configBase64, 'base64').toString('utf8')) as { keypair?: unknown }
    if (typeof config.keypair !== 'string') return undefined
    const key = privateKeyFromProtobuf(Buffer.from(config.keypair, 'hex'))
    return peerIdFromPrivateKey(key).toString() === peerId ? key : undefined
  } catch {
    return undefined
  }
}

export function peerIdOfKeypairHex (hex: string): string {
  return peerIdFromPrivateKey(privateKeyFromProtobuf(Buffer.from(hex, 'hex'))).toString()
}

/**
 * A new identity for relay `id`. The config holds only what never changes for
 * the slot (id, key, ports); limits, drain and the announced address are flags
 * in the pod, so changing them never touches the key.
 */
export async function newRelayIdentity (id: string): Promise<RelayIdentity> {
  const key = await generateKeyPair('Ed25519')
  const keypair = Buffer.from(privateKeyToProtobuf(key)).toString('hex')
  const config = {
    id,
    // required by the config schema; unused, since the operator (not the relay) registers with discovery
    p2p_secret: randomBytes(24).toString('hex'),
    port: RELAY_CONTAINER_PORT,
    keypair,
    host: '0.0.0.0',
    metrics_host: '0.0.0.0',
    metrics_port: RELAY_METRICS_PORT
  }
  return { peerId: peerIdFromPrivateKey(key).toString(), configJson: JSON.stringify(config, null, 2) + '\n' }
}
