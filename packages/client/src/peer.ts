import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { RelayManager, type RelayManagerOptions } from './relay-manager.js'
import type { PrivateKey } from '@libp2p/interface'

export interface RelayPeerOptions extends RelayManagerOptions {
  /** the peer's identity; a new Ed25519 key when omitted */
  privateKey?: PrivateKey
  /** direct TCP listen addresses (default `/ip4/0.0.0.0/tcp/0`); DCUtR needs one to upgrade */
  listen?: string[]
  /** addresses to announce instead of the observed ones (e.g. a port forward) */
  announce?: string[]
  /** how long creation waits for the first reservation (default 20 s) */
  reservationTimeoutMs?: number
}

export interface RelayPeer {
  node: Libp2p
  relays: RelayManager
  stop: () => Promise<void>
}

/**
 * A libp2p node for app peers behind NATs: TCP + Noise + Yamux, identify,
 * ping, the Circuit Relay v2 transport (to listen and dial through relays)
 * and DCUtR (to upgrade relayed connections to direct ones by hole
 * punching). Reservations are kept by a RelayManager fed from the
 * discovery API.
 */
export async function createRelayPeer (opts: RelayPeerOptions): Promise<RelayPeer> {
  const node = await createLibp2p({
    ...(opts.privateKey != null ? { privateKey: opts.privateKey } : {}),
    addresses: {
      listen: opts.listen ?? ['/ip4/0.0.0.0/tcp/0'],
      ...(opts.announce != null ? { announce: opts.announce } : {})
    },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dcutr: dcutr()
    }
  })
  await node.start()
  const relays = new RelayManager(node, opts)
  try {
    await relays.start(opts.reservationTimeoutMs != null ? { timeoutMs: opts.reservationTimeoutMs } : {})
  } catch (err) {
    await relays.stop()
    await node.stop()
    throw err
  }
  return {
    node,
    relays,
    async stop () {
      await relays.stop()
      await node.stop()
    }
  }
}
