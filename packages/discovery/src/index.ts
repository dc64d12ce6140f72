export {
  NotListedError,
  RegistrationConflictError,
  type RegisterOptions,
  RegistrationForbiddenError,
  type DeregistrationProof,
  StoreUnavailableError,
  type RelayRecord,
  type RelayRegistration,
  type RelayStore,
} from './types.js'
export { createMemoryStore } from './memory-store.js'
export { createRedisStore, type RedisStoreOptions } from './redis-store.js'
export { createDiscoveryServer, type DiscoveryServerOptions } from './server.js'
export { relayRegistrationSchema, relayRecordSchema, normaliseAddr } from './schemas.js'
export { type AccountsOptions, ADMIN_ACCOUNTS, ADMIN_USAGE, TICKET_KEYS, TICKETS } from './accounts-routes.js'
export { peerIdSchema } from './schemas.js'
export { createRelayListCache, negotiateEncoding, etagMatches, relayListEtag, type RelayListSnapshot, type ListEncoding } from './relay-list-cache.js'
export { createRankedCache, type RankedCacheOptions } from './ranked-cache.js'
