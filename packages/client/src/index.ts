export { fetchRelays, rankRelays, DiscoveryError, type RelayInfo } from './discovery.js'
export { RelayManager, type RelayManagerOptions, type RelayManagerEvent } from './relay-manager.js'
export { createRelayPeer, type RelayPeer, type RelayPeerOptions } from './peer.js'
export { isRelayed } from './connections.js'
