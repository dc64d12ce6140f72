import { Command, Option } from 'commander'
import { createLogger, MAX_TIMER_SECONDS, readJsonFile } from '@pos-relay/shared'
import { DEFAULT_LIMITS, DEFAULT_METRICS_PORT, DEFAULT_PORT, LIMITS_POLL_MS, loadConfig, parseConfig, RelayServer, RELOADABLE_LIMITS, RELOADABLE_RATE_LIMITS, type RelayConfig } from '@pos-relay/relay'
import { boolEnv, checkRedisUrl, collect, intArg, LOG_LEVEL_HELP, logLevelArg, option } from '../options.js'
import { quicOrTcp } from '../quic-fallback.js'
import { handleShutdown } from '../shutdown.js'

interface RunOptions {
  config: string
  announce?: string[]
  port?: number
  host?: string
  quic?: boolean
  apiUrl?: string
  metricsPort?: number
  metricsHost?: string
  drainSeconds?: number
  maxReservations?: number
  reservationTtl?: number
  maxCircuits?: number
  circuitDataLimit?: number
  circuitDuration?: number
  maxConnections?: number
  maxPendingConnections?: number
  handshakeTimeout?: number
  ipMaxConnections?: number
  peerMaxCircuits?: number
  ipMaxCircuits?: number
  circuitIdleTimeout?: number
  maxBufferedBytes?: number
  redis?: string
  ipConnectionsPerSecond?: number
  peerReservationsPerMinute?: number
  peerCircuitsPerMinute?: number
  accountCircuitsPerMinute?: number
  auth?: boolean
  ticketKeysUrl?: string
  ticketKeysFile?: string
  authRedis?: string
  tiersFile?: string
  meteringInterval?: number
  refreshOnly?: boolean
  limitsFile?: string
  /** from the environment only (POS_RELAY_P2P_SECRET): a secret is never a flag, flags show in `ps` */
  p2pSecret?: string
  logLevel?: string
}

/** env var that overrides the config file's p2p_secret (the operator sets it from a Secret) */
export const P2P_SECRET_ENV = 'POS_RELAY_P2P_SECRET'

/** Numeric limit flags (camelCase option names) and the config fields they override. */
const LIMIT_FLAGS = [
  ['maxReservations', 'max_reservations'],
  ['reservationTtl', 'reservation_ttl_seconds'],
  ['maxCircuits', 'max_circuits'],
  ['circuitDataLimit', 'circuit_data_limit_bytes'],
  ['circuitDuration', 'circuit_duration_seconds'],
  ['maxConnections', 'max_connections'],
  ['maxPendingConnections', 'max_pending_connections'],
  ['handshakeTimeout', 'handshake_timeout_seconds'],
  ['ipMaxConnections', 'ip_max_connections'],
  ['peerMaxCircuits', 'peer_max_circuits'],
  ['ipMaxCircuits', 'ip_max_circuits'],
  ['circuitIdleTimeout', 'circuit_idle_timeout_seconds'],
  ['maxBufferedBytes', 'max_buffered_bytes'],
] as const satisfies ReadonlyArray<readonly [keyof RunOptions, keyof RelayConfig['limits']]>

const RATE_LIMIT_FLAGS = [
  ['ipConnectionsPerSecond', 'ip_connections_per_second'],
  ['peerReservationsPerMinute', 'peer_reservations_per_minute'],
  ['peerCircuitsPerMinute', 'peer_circuits_per_minute'],
  ['accountCircuitsPerMinute', 'account_circuits_per_minute'],
] as const satisfies ReadonlyArray<readonly [keyof RunOptions, keyof RelayConfig['rate_limits']]>

/**
 * Boolean env vars (POS_RELAY_QUIC, POS_RELAY_AUTH) are read here, strictly, not by commander: its env
 * support turns any value of a boolean flag's variable into "on" (`AUTH_ENABLED=false` meant auth
 * on) and of a `--no-…` flag's variable into "off".
 */
/** Flags and env vars override the file; the result is validated as a whole. */
export async function applyOverrides (file: RelayConfig, o: RunOptions): Promise<RelayConfig> {
  checkRedisUrl('--redis', 'POS_RELAY_RATE_LIMIT_REDIS_URL', o.redis)
  checkRedisUrl('--auth-redis', 'POS_RELAY_AUTH_REDIS_URL', o.authRedis)
  const quic = o.quic ?? boolEnv('POS_RELAY_QUIC', 'RELAY_QUIC')
  const authEnabled = o.auth ?? boolEnv('POS_RELAY_AUTH', 'AUTH_ENABLED')
  const refreshOnly = o.refreshOnly ?? boolEnv('POS_RELAY_REFRESH_ONLY')
  const limits = { ...file.limits }
  for (const [flag, field] of LIMIT_FLAGS) if (o[flag] != null) limits[field] = o[flag]
  const rateLimits = { ...file.rate_limits }
  if (o.redis != null) rateLimits.redis_url = o.redis
  for (const [flag, field] of RATE_LIMIT_FLAGS) if (o[flag] != null) rateLimits[field] = o[flag]
  const auth = { ...file.auth }
  if (authEnabled != null) auth.enabled = authEnabled
  if (o.ticketKeysUrl != null) auth.ticket_keys_url = o.ticketKeysUrl
  if (o.ticketKeysFile != null) {
    const keys = await readJsonFile('--ticket-keys-file', o.ticketKeysFile)
    // discovery's keys file is a JSON array of private keys
    if (Array.isArray(keys)) throw new Error(`--ticket-keys-file ${o.ticketKeysFile} is a signing keys file: relays take public keys only (\`pos-relay keys public --in ${o.ticketKeysFile}\` prints them)`)
    auth.ticket_keys = keys as RelayConfig['auth']['ticket_keys'] // checked by parseConfig below
  }
  if (o.authRedis != null) auth.redis_url = o.authRedis
  if (o.meteringInterval != null) auth.metering_interval_seconds = o.meteringInterval
  if (o.tiersFile != null) auth.tiers = await readJsonFile('--tiers-file', o.tiersFile) as RelayConfig['auth']['tiers']
  // one Redis serves rate limits and accounts unless the config names two
  if (auth.redis_url == null && rateLimits.redis_url != null) auth.redis_url = rateLimits.redis_url
  return parseConfig({
    ...file,
    ...(o.port != null ? { port: o.port } : {}),
    ...(o.host != null ? { host: o.host } : {}),
    ...(quic != null ? { quic } : {}),
    ...(o.apiUrl != null ? { api_url: o.apiUrl } : {}),
    ...(o.announce != null && o.announce.length > 0 ? { announce: o.announce } : {}),
    ...(o.metricsPort != null ? { metrics_port: o.metricsPort } : {}),
    ...(o.metricsHost != null ? { metrics_host: o.metricsHost } : {}),
    ...(o.drainSeconds != null ? { drain_seconds: o.drainSeconds } : {}),
    ...(refreshOnly != null ? { refresh_only: refreshOnly } : {}),
    ...(o.limitsFile != null ? { limits_file: o.limitsFile } : {}),
    ...(o.p2pSecret != null && o.p2pSecret !== '' ? { p2p_secret: o.p2pSecret } : {}),
    limits,
    rate_limits: rateLimits,
    auth
  }, 'config after flags')
}

export function runCommand (): Command {
  return new Command('run')
    .description('Run the relay (the default command): Circuit Relay v2 over TCP (Noise, Yamux) and QUIC (UDP, same port), registered with the discovery API')
    .addOption(option('-c, --config <file>', 'config file written by `pos-relay init`', 'POS_RELAY_CONFIG', 'CONFIG_PATH').default('./config.json'))
    .addOption(option('-a, --announce <multiaddr>', 'public address to advertise and register (repeatable, or comma-separated); with QUIC on and no quic-v1 address listed, each /tcp/<port> one is announced as /udp/<port>/quic-v1 too', 'POS_RELAY_ANNOUNCE', 'RELAY_ANNOUNCE').argParser(collect))
    .addOption(option('-p, --port <port>', `TCP port to listen on, and UDP port for QUIC (config: port, default ${DEFAULT_PORT}; 0 = a random port each)`, 'POS_RELAY_PORT', 'RELAY_PORT').argParser(intArg('--port')))
    .addOption(option('--host <ip>', 'IPv4 or IPv6 address to listen on (config: host, default 0.0.0.0)', 'POS_RELAY_HOST', 'RELAY_HOST'))
    // --quic and --no-quic both defined: without a flag the value stays
    // undefined, so the config file (or RELAY_QUIC) decides
    .addOption(new Option('--quic', 'serve QUIC (quic-v1) on UDP <port> too, and fail if its native module does not load; QUIC is on by default (config: quic, default true; env: POS_RELAY_QUIC=true|false), and switched off with a warning where the native module does not load'))
    .addOption(new Option('--no-quic', 'serve TCP only: no UDP socket, no QUIC address announced'))
    .addOption(option('--api-url <url>', 'discovery API base URL (config: api_url)', 'POS_RELAY_API_URL', 'API_URL'))
    .addOption(option('--metrics-port <port>', `HTTP port for /metrics, /healthz, /readyz (config: metrics_port, default ${DEFAULT_METRICS_PORT})`, 'POS_RELAY_METRICS_PORT', 'METRICS_PORT').argParser(intArg('--metrics-port')))
    .addOption(option('--metrics-host <ip>', 'address the metrics port binds to (config: metrics_host, default 0.0.0.0)', 'POS_RELAY_METRICS_HOST', 'METRICS_HOST'))
    .addOption(option('--drain-seconds <s>', 'after SIGTERM, how long open circuits may keep running (config: drain_seconds, default 30)', 'POS_RELAY_DRAIN_SECONDS', 'DRAIN_SECONDS').argParser(intArg('--drain-seconds')))
    .addOption(option('--max-reservations <n>', 'reservations held at once (config: limits.max_reservations)', 'POS_RELAY_MAX_RESERVATIONS', 'MAX_RESERVATIONS').argParser(intArg('--max-reservations')))
    .addOption(option('--reservation-ttl <s>', 'reservation lifetime in seconds (config: limits.reservation_ttl_seconds)', 'POS_RELAY_RESERVATION_TTL_SECONDS', 'RESERVATION_TTL_SECONDS').argParser(intArg('--reservation-ttl')))
    .addOption(option('--max-circuits <n>', 'circuits relayed at once (config: limits.max_circuits)', 'POS_RELAY_MAX_CIRCUITS', 'MAX_CIRCUITS').argParser(intArg('--max-circuits')))
    .addOption(option('--circuit-data-limit <bytes>', 'bytes per circuit, both directions, 0 = unlimited (config: limits.circuit_data_limit_bytes)', 'POS_RELAY_CIRCUIT_DATA_LIMIT_BYTES', 'CIRCUIT_DATA_LIMIT_BYTES').argParser(intArg('--circuit-data-limit')))
    .addOption(option('--circuit-duration <s>', `seconds per circuit, 0 = unlimited, at most ${MAX_TIMER_SECONDS} (config: limits.circuit_duration_seconds)`, 'POS_RELAY_CIRCUIT_DURATION_SECONDS', 'CIRCUIT_DURATION_SECONDS').argParser(intArg('--circuit-duration')))
    .addOption(option('--circuit-idle-timeout <s>', `seconds without a byte either way after which a circuit is closed, 0 = never, at most ${MAX_TIMER_SECONDS} (config: limits.circuit_idle_timeout_seconds, default ${DEFAULT_LIMITS.circuit_idle_timeout_seconds})`, 'POS_RELAY_CIRCUIT_IDLE_TIMEOUT_SECONDS', 'CIRCUIT_IDLE_TIMEOUT_SECONDS').argParser(intArg('--circuit-idle-timeout')))
    .addOption(option('--peer-max-circuits <n>', `circuits at once from one source peer, 0 = unlimited (config: limits.peer_max_circuits, default ${DEFAULT_LIMITS.peer_max_circuits})`, 'POS_RELAY_PEER_MAX_CIRCUITS', 'PEER_MAX_CIRCUITS').argParser(intArg('--peer-max-circuits')))
    .addOption(option('--max-buffered-bytes <bytes>', `bytes buffered in all circuits together; at it circuits stop reading and new ones are refused, 0 = unlimited (config: limits.max_buffered_bytes, default ${DEFAULT_LIMITS.max_buffered_bytes})`, 'POS_RELAY_MAX_BUFFERED_BYTES', 'MAX_BUFFERED_BYTES').argParser(intArg('--max-buffered-bytes')))
    .addOption(option('--ip-max-circuits <n>', `circuits at once from one source IP, 0 = unlimited (config: limits.ip_max_circuits, default ${DEFAULT_LIMITS.ip_max_circuits})`, 'POS_RELAY_IP_MAX_CIRCUITS', 'IP_MAX_CIRCUITS').argParser(intArg('--ip-max-circuits')))
    .addOption(option('--max-connections <n>', 'connections at once, 0 = derived from the other limits (config: limits.max_connections)', 'POS_RELAY_MAX_CONNECTIONS', 'MAX_CONNECTIONS').argParser(intArg('--max-connections')))
    .addOption(option('--max-pending-connections <n>', 'connections still handshaking at once (config: limits.max_pending_connections)', 'POS_RELAY_MAX_PENDING_CONNECTIONS', 'MAX_PENDING_CONNECTIONS').argParser(intArg('--max-pending-connections')))
    .addOption(option('--handshake-timeout <s>', 'seconds a new connection has to finish Noise + Yamux (config: limits.handshake_timeout_seconds)', 'POS_RELAY_HANDSHAKE_TIMEOUT_SECONDS', 'HANDSHAKE_TIMEOUT_SECONDS').argParser(intArg('--handshake-timeout')))
    .addOption(option('--ip-max-connections <n>', 'connections at once from one IP, 0 = unlimited (config: limits.ip_max_connections)', 'POS_RELAY_IP_MAX_CONNECTIONS', 'IP_MAX_CONNECTIONS').argParser(intArg('--ip-max-connections')))
    .addOption(option('--limits-file <file>', `JSON file of the limits that apply without a restart, {"limits": {...}, "rate_limits": {...}} in the config file's shape; read at start and every ${LIMITS_POLL_MS / 1000} s, a bad file is logged and the previous limits stay (config: limits_file; fields: ${[...RELOADABLE_LIMITS.map((k) => `limits.${k}`), ...RELOADABLE_RATE_LIMITS.map((k) => `rate_limits.${k}`)].join(', ')})`, 'POS_RELAY_LIMITS_FILE'))
    .addOption(option('--redis <url>', 'Redis shared by the fleet for rate limits; without it this relay limits alone (config: rate_limits.redis_url)', 'POS_RELAY_RATE_LIMIT_REDIS_URL', 'REDIS_URL'))
    .addOption(option('--ip-connections-per-second <n>', 'new connections per second per source IP, 0 = off (config: rate_limits.ip_connections_per_second)', 'POS_RELAY_IP_CONNECTIONS_PER_SECOND', 'IP_CONNECTIONS_PER_SECOND').argParser(intArg('--ip-connections-per-second')))
    .addOption(option('--peer-reservations-per-minute <n>', 'reservations per minute per peer across the fleet, 0 = off (config: rate_limits.peer_reservations_per_minute)', 'POS_RELAY_PEER_RESERVATIONS_PER_MINUTE', 'PEER_RESERVATIONS_PER_MINUTE').argParser(intArg('--peer-reservations-per-minute')))
    .addOption(option('--peer-circuits-per-minute <n>', 'circuits per minute per source peer across the fleet, 0 = off (config: rate_limits.peer_circuits_per_minute)', 'POS_RELAY_PEER_CIRCUITS_PER_MINUTE', 'PEER_CIRCUITS_PER_MINUTE').argParser(intArg('--peer-circuits-per-minute')))
    .addOption(option('--account-circuits-per-minute <n>', 'circuits per minute per account (with --auth), across the fleet with --redis, 0 = off (config: rate_limits.account_circuits_per_minute, default 0)', 'POS_RELAY_ACCOUNT_CIRCUITS_PER_MINUTE', 'ACCOUNT_CIRCUITS_PER_MINUTE').argParser(intArg('--account-circuits-per-minute')))
    .addOption(new Option('--auth', 'require account tickets for reservations and circuits (config: auth.enabled; env: POS_RELAY_AUTH=true|false)'))
    .addOption(option('--ticket-keys-url <url>', 'JWKS of the ticket keys (config: auth.ticket_keys_url, default <api_url>/api/p2p/ticket-keys)', 'POS_RELAY_TICKET_KEYS_URL', 'TICKET_KEYS_URL'))
    .addOption(option('--ticket-keys-file <file>', 'public ticket keys configured offline: a JWKS file, as `pos-relay keys public` prints it (config: auth.ticket_keys); without --ticket-keys-url the relay then never fetches keys', 'POS_RELAY_TICKET_KEYS_PUBLIC_FILE', 'TICKET_KEYS_PUBLIC_FILE'))
    .addOption(option('--auth-redis <url>', 'Redis for revocations, metering, quotas and account reservation counts (config: auth.redis_url, default: --redis)', 'POS_RELAY_AUTH_REDIS_URL', 'AUTH_REDIS_URL'))
    .addOption(option('--tiers-file <file>', 'tiers, in the format of `pos-relay discovery --tiers-file`: JSON object keyed by tier name, or array of tiers with "name" (config: auth.tiers)', 'POS_RELAY_TIERS_FILE', 'TIERS_FILE'))
    .addOption(option('--metering-interval <s>', 'seconds between usage flushes to Redis (config: auth.metering_interval_seconds)', 'POS_RELAY_METERING_INTERVAL_SECONDS', 'METERING_INTERVAL_SECONDS').argParser(intArg('--metering-interval')))
    .addOption(new Option('--refresh-only', 'only refresh this relay\'s discovery entry, never create it (config: refresh_only; env: POS_RELAY_REFRESH_ONLY=true|false): for relays whose entry an operator manages, as in a RelayPool'))
    .addOption(option('--log-level <level>', LOG_LEVEL_HELP, 'POS_RELAY_LOG_LEVEL', 'LOG_LEVEL').argParser(logLevelArg).default('info'))
    .addHelpText('after', `\nEnvironment: ${P2P_SECRET_ENV} overrides the config file's p2p_secret (the Bearer token towards the discovery API).`)
    .action(async (opts: RunOptions) => {
      const p2pSecret = process.env[P2P_SECRET_ENV]
      const logger = createLogger({ name: 'relay', level: opts.logLevel })
      const config = await quicOrTcp(await applyOverrides(await loadConfig(opts.config), { ...opts, ...(p2pSecret != null ? { p2pSecret } : {}) }), opts.quic ?? boolEnv('POS_RELAY_QUIC', 'RELAY_QUIC'), logger)
      const relay = new RelayServer({ config, logger })
      await relay.start()
      // one line on stdout for scripts and tests: where to reach this relay
      process.stdout.write(JSON.stringify({ event: 'relay_ready', peer_id: relay.peerId, addrs: relay.addresses, metrics_port: relay.metricsAddress?.port }) + '\n')
      handleShutdown(logger, async () => { await relay.drain() }, async () => { await relay.stop() })
    })
}
