import { Command } from 'commander'
// the server itself (fastify, swagger) loads only when the command runs: see action()
import type { AccountsOptions, RelayStore } from '@pos-relay/discovery'
import { createLogger, readJsonFile, readSecretFile, type Logger } from '@pos-relay/shared'
import {
  createMemoryAccountStore,
  createMemoryRevocationBus,
  createMemoryUsageSink,
  createRedisAccountStore,
  createRedisRevocationBus,
  createRedisUsageSink,
  DEFAULT_TICKET_TTL_SECONDS,
  DEFAULT_TIERS,
  MAX_TICKET_TTL_SECONDS,
  parseTiers,
  TicketIssuer,
  type Tier
} from '@pos-relay/accounts'
import { boolEnv, checkRedisUrl, configError, intArg, LOG_LEVEL_HELP, logLevelArg, option } from '../options.js'
import { readEnv } from '../env.js'
import { handleShutdown } from '../shutdown.js'
import { readTicketKeysFile } from './keys.js'

export const DEFAULT_DISCOVERY_PORT = 8080

interface DiscoveryOptions extends AccountsFlags { port: number, host: string, redis?: string, ttl: number, p2pSecretFile?: string, logLevel: string, publicAddressesOnly?: boolean, requireSigned?: boolean, authFailuresPerMinute: number }

// ---- accounts (issue 4): flags, loading and wiring of the discovery side ----

export interface AccountsFlags { adminSecretFile?: string, ticketKeysFile?: string, ticketTtl: number, tiersFile?: string, accountsRedis?: string }

/** Reads and validates a tiers file (JSON); the built-in tiers without one. */
export async function loadTiers (file: string | undefined): Promise<Record<string, Tier>> {
  if (file == null) return DEFAULT_TIERS
  const json = await readJsonFile('tiers file', file)
  try {
    return parseTiers(json)
  } catch (err: any) {
    throw configError(`${file}: ${err.message}`)
  }
}

export function checkTicketTtl (ttl: number): void {
  if (ttl < 1 || ttl > MAX_TICKET_TTL_SECONDS) throw configError(`--ticket-ttl must be from 1 to ${MAX_TICKET_TTL_SECONDS} seconds`)
}

/**
 * Accounts are on when both a ticket keys file and an admin secret are given. With a Redis URL
 * accounts, revocations and usage live in Redis; otherwise in this process's memory.
 */
async function accountsFrom (opts: DiscoveryOptions, logger: Logger): Promise<{ accounts: AccountsOptions, close: () => Promise<void> } | undefined> {
  let adminSecret: string | undefined
  if (opts.adminSecretFile != null) adminSecret = await readSecretFile('--admin-secret-file', opts.adminSecretFile)
  else adminSecret = readEnv('POS_RELAY_ADMIN_SECRET', 'ADMIN_SECRET')?.trim()
  if (adminSecret === '') adminSecret = undefined
  if (opts.ticketKeysFile == null && adminSecret == null) return undefined
  if (opts.ticketKeysFile == null) throw configError('accounts need a ticket keys file too: pass --ticket-keys-file (create one with `pos-relay keys generate --out FILE`)')
  if (adminSecret == null) throw configError('accounts need an admin secret too: set POS_RELAY_ADMIN_SECRET or pass --admin-secret-file')
  checkTicketTtl(opts.ticketTtl)
  const keys = await readTicketKeysFile(opts.ticketKeysFile).catch((err: Error) => { throw configError(err.message) })
  const issuer = await TicketIssuer.create({ keys, ttlSeconds: opts.ticketTtl })
  const tiers = await loadTiers(opts.tiersFile)
  // accounts may live in their own Redis (e.g. a persistent one, while the relay registry is ephemeral)
  const redisUrl = opts.accountsRedis ?? opts.redis
  const revocations = redisUrl != null ? createRedisRevocationBus({ redisUrl, logger }) : createMemoryRevocationBus({ logger })
  const store = redisUrl != null ? createRedisAccountStore({ redisUrl, revocations, logger }) : createMemoryAccountStore({ revocations })
  const usage = redisUrl != null ? createRedisUsageSink({ redisUrl, logger }) : createMemoryUsageSink()
  return {
    accounts: { store, issuer, adminSecret, revocations, usage, tiers },
    close: async () => { await store.close(); await usage.close(); await revocations.close() }
  }
}

// ---- end accounts ----

async function secretFrom (opts: DiscoveryOptions): Promise<string> {
  if (opts.p2pSecretFile != null) return await readSecretFile('--p2p-secret-file', opts.p2pSecretFile)
  const secret = readEnv('POS_RELAY_P2P_SECRET', 'P2P_SECRET')?.trim()
  if (secret == null || secret === '') throw new Error('the p2p secret is required: set POS_RELAY_P2P_SECRET or pass --p2p-secret-file')
  return secret
}

export function discoveryCommand (): Command {
  return new Command('discovery')
    .description('Run the discovery API: GET/POST /api/p2p/relays, relays kept in Redis with a TTL (or in memory without --redis)')
    .addOption(option('-p, --port <port>', 'HTTP port', 'POS_RELAY_DISCOVERY_PORT', 'DISCOVERY_PORT').argParser(intArg('--port')).default(DEFAULT_DISCOVERY_PORT))
    .addOption(option('--host <ip>', 'address to bind', 'POS_RELAY_DISCOVERY_HOST', 'DISCOVERY_HOST').default('0.0.0.0'))
    .addOption(option('--redis <url>', 'Redis URL, e.g. redis://127.0.0.1:6379; without it relays are kept in this process\'s memory', 'POS_RELAY_DISCOVERY_REDIS_URL', 'REDIS_URL'))
    .addOption(option('--ttl <seconds>', 'seconds a relay stays listed after its last heartbeat', 'POS_RELAY_DISCOVERY_TTL_SECONDS', 'RELAY_TTL_SECONDS').argParser(intArg('--ttl')).default(30))
    .addOption(option('--p2p-secret-file <file>', 'read the relays\' p2p secret from this file instead of POS_RELAY_P2P_SECRET', 'POS_RELAY_P2P_SECRET_FILE', 'P2P_SECRET_FILE'))
    .addOption(option('--log-level <level>', LOG_LEVEL_HELP, 'POS_RELAY_LOG_LEVEL', 'LOG_LEVEL').argParser(logLevelArg).default('info'))
    // a boolean env var read strictly in action(): commander would take any value of it as true
    .addOption(option('--public-addresses-only', 'refuse relay addrs in loopback and private ranges (public fleets); unspecified, link-local, multicast and broadcast addrs are always refused (env: POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY=true|false)'))
    .addOption(option('--require-signed', 'refuse unsigned registrations and deletions (403): each must be signed by the relay\'s libp2p key (our relays and the operator always sign); entries registered signed are owned by their key either way (env: POS_RELAY_DISCOVERY_REQUIRE_SIGNED=true|false)'))
    .addOption(option('--auth-failures-per-minute <n>', 'failed bearer authentications (p2p secret, admin secret, API key) one source IP may make per minute before it gets 429; 0 = off (behind a proxy, the proxy\'s IP counts)', 'POS_RELAY_DISCOVERY_AUTH_FAILURES_PER_MINUTE', 'AUTH_FAILURES_PER_MINUTE').argParser(intArg('--auth-failures-per-minute')).default(60))
    // accounts (issue 4): on when a ticket keys file and an admin secret are given
    .addOption(option('--admin-secret-file <file>', 'read the admin secret (admin routes; must differ from the p2p secret) from this file instead of POS_RELAY_ADMIN_SECRET', 'POS_RELAY_ADMIN_SECRET_FILE', 'ADMIN_SECRET_FILE'))
    .addOption(option('--ticket-keys-file <file>', 'ticket-signing keys (JSON array of Ed25519 JWKs, first signs; `pos-relay keys generate`); turns accounts on with an admin secret', 'POS_RELAY_TICKET_KEYS_FILE', 'TICKET_KEYS_FILE'))
    .addOption(option('--ticket-ttl <seconds>', `relay ticket lifetime, 1-${MAX_TICKET_TTL_SECONDS}`, 'POS_RELAY_TICKET_TTL_SECONDS', 'TICKET_TTL_SECONDS').argParser(intArg('--ticket-ttl')).default(DEFAULT_TICKET_TTL_SECONDS))
    .addOption(option('--tiers-file <file>', 'tiers (JSON object keyed by tier name); default: free, pro, unlimited', 'POS_RELAY_TIERS_FILE', 'TIERS_FILE'))
    .addOption(option('--accounts-redis <url>', 'Redis URL for accounts, usage and revocations (default: the --redis URL)', 'POS_RELAY_ACCOUNTS_REDIS_URL'))
    .addHelpText('after', '\nEnvironment:\n  POS_RELAY_P2P_SECRET     the secret relays send as `Authorization: Bearer <secret>` (required unless --p2p-secret-file)\n  POS_RELAY_ADMIN_SECRET   the admin secret for /api/admin/* (accounts: with --ticket-keys-file; unless --admin-secret-file)\n  POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY  true|false (also 1/0, yes/no, on/off): as --public-addresses-only\n  POS_RELAY_DISCOVERY_REQUIRE_SIGNED  true|false (also 1/0, yes/no, on/off): as --require-signed\n  The names before POS_RELAY_… (P2P_SECRET, REDIS_URL, …) are still read, with a deprecation warning.\n\nAccounts live in Redis with --redis, otherwise in this process\'s memory.\n')
    .action(async (opts: DiscoveryOptions) => {
      if (opts.ttl < 1) throw new Error('--ttl must be at least 1 second')
      checkRedisUrl('--redis', 'POS_RELAY_DISCOVERY_REDIS_URL', opts.redis)
      checkRedisUrl('--accounts-redis', 'POS_RELAY_ACCOUNTS_REDIS_URL', opts.accountsRedis)
      const publicAddressesOnly = opts.publicAddressesOnly ?? boolEnv('POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY', 'PUBLIC_ADDRESSES_ONLY') ?? false
      const requireSigned = opts.requireSigned ?? boolEnv('POS_RELAY_DISCOVERY_REQUIRE_SIGNED', 'REQUIRE_SIGNED') ?? false
      const secret = await secretFrom(opts)
      const logger = createLogger({ name: 'discovery', level: opts.logLevel })
      const { createDiscoveryServer, createMemoryStore, createRedisStore } = await import('@pos-relay/discovery')
      const store: RelayStore = opts.redis != null
        ? createRedisStore({ url: opts.redis, logger })
        : createMemoryStore()
      const accounts = await accountsFrom(opts, logger)
      const app = await createDiscoveryServer({ store, p2pSecret: secret, ttlSeconds: opts.ttl, logger, publicAddressesOnly, requireSigned, authFailuresPerMinute: opts.authFailuresPerMinute, ...(accounts != null ? { accounts: accounts.accounts } : {}) })
      await app.listen({ host: opts.host, port: opts.port })
      const port = (app.server.address() as { port: number }).port
      process.stdout.write(JSON.stringify({
        event: 'discovery_ready',
        url: `http://${opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host}:${port}`,
        store: opts.redis != null ? 'redis' : 'memory',
        ...(accounts != null ? { accounts_store: (opts.accountsRedis ?? opts.redis) != null ? 'redis' : 'memory' } : {}),
        ttl_seconds: opts.ttl,
        public_addresses_only: publicAddressesOnly,
        require_signed: requireSigned,
        accounts: accounts != null,
        ...(accounts != null ? { ticket_kid: accounts.accounts.issuer.kid, ticket_ttl_seconds: opts.ticketTtl, tiers: Object.keys(accounts.accounts.tiers) } : {})
      }) + '\n')
      const close = async (): Promise<void> => { await app.close(); await store.close(); await accounts?.close() }
      handleShutdown(logger, close, close)
    })
}
