export {
  fetchRelays, parseRelayList, rankRelays, relayScore, compareRanked, relaysToDial, relaysToReserve, DiscoveryError,
  DEFAULT_RELAY_COUNT, EXTRA_DIAL_RELAYS, RANKED_COUNT_MAX, rankedCount, type DiscoveryErrorCode, type RelayInfo, type FetchRelaysOptions
} from './discovery.js'
export { RelayManager, FAILOVER_TIMING, type RelayManagerOptions, type RelayManagerEvent } from './relay-manager.js'
export { createRelayPeer, type RelayPeer, type RelayPeerOptions } from './peer.js'
export { isRelayed } from './connections.js'
export {
  TicketClient, TicketRejectedError, TicketProtocolError, presentTicket, exchangeTicket, parseTicketReply,
  TICKET_PROTOCOL, MAX_TICKET_FRAME_BYTES, type TicketReply
} from './tickets.js'
