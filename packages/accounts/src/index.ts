export {
  TicketError,
  type Account,
  type AccountStore,
  type RevocationEvent,
  type Tier,
  type TicketClaims,
  type TicketRejection,
  type UsageDelta,
  type UsageRow,
} from './contract.js'
export { AccountsUnavailableError, type MinimalLogger, type RevocationBus } from './types.js'
export { DEFAULT_TIERS, parseTiers, tierNameSchema, tiersJsonSchema, TIER_NAME } from './tiers.js'
export { ACCOUNT_ID, API_KEY_PATTERN } from './api-keys.js'
export {
  createMemoryAccountStore,
  createRedisAccountStore,
  ACCOUNT_NAME_MAX,
  type MemoryAccountStoreOptions,
  type RedisAccountStoreOptions,
} from './account-store.js'
export {
  generateTicketKey,
  parseTicketKeys,
  publicTicketKey,
  ticketKeysUrl,
  TicketIssuer,
  TicketVerifier,
  DEFAULT_TICKET_TTL_SECONDS,
  MAX_TICKET_TTL_SECONDS,
  MAX_TICKET_LENGTH,
  TICKET_ALG,
  type IssuedTicket,
  type JWK,
  type PublicTicketKey,
  type TicketIssuerOptions,
  type TicketKey,
  type TicketVerifierOptions,
} from './tickets.js'
export {
  createMemoryRevocationBus,
  createRedisRevocationBus,
  TICKET_REVOCATION_TTL_SECONDS,
  type RedisRevocationBusOptions,
} from './revocation.js'
export {
  UsageMeter,
  createMemoryUsageSink,
  createRedisUsageSink,
  queryUsage,
  monthlyBytes,
  usageToCsv,
  hourKey,
  monthKey,
  FLUSH_MARKER_TTL_SECONDS,
  MAX_QUERY_HOURS,
  QUOTA_COUNTER_TTL_SECONDS,
  USAGE_CSV_COLUMNS,
  type RedisUsageSinkOptions,
  type UsageMeterOptions,
  type UsageMeterStats,
  type UsageQuery,
  type UsageSink,
} from './metering.js'
export { createDevAccounts, type DevAccounts } from './dev.js'
export { failFastRedis, LUA_NOW_MS, type FailFastRedis, type RedisConnectionOptions } from './redis.js'
