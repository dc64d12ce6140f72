import { randomBytes } from 'node:crypto'
import { Command, Option } from 'commander'
import { createMemoryReservationCounter, newConfig, parseConfig, RelayServer } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { createDevAccounts, DEFAULT_TICKET_TTL_SECONDS, MAX_TICKET_TTL_SECONDS, monthlyBytes, UsageMeter } from '@pos-relay/accounts'
import { boolEnv, intArg, LOG_LEVEL_HELP, logLevelArg, option } from '../options.js'
import { quicOrTcp } from '../quic-fallback.js'
import { handleShutdown } from '../shutdown.js'
import { checkTicketTtl, DEFAULT_DISCOVERY_PORT, loadTiers } from './discovery.js'

interface DevOptions extends DevAccountsFlags { quic?: boolean, port: number, relayPort: number, metricsPort: number, ttl: number, logLevel: string }

// ---- accounts (issue 4), discovery side: flags of `dev` ----
interface DevAccountsFlags { accounts: boolean, tiersFile?: string, ticketTtl: number }
// ---- end accounts ----

export function devCommand (): Command {
  return new Command('dev')
    .description('Local mode in one process: the discovery API on an in-memory store plus one relay on 127.0.0.1, registered with it')
    .addOption(option('-p, --port <port>', 'discovery HTTP port', 'POS_RELAY_DISCOVERY_PORT', 'DISCOVERY_PORT').argParser(intArg('--port')).default(DEFAULT_DISCOVERY_PORT))
    .addOption(option('--relay-port <port>', 'relay TCP port', 'POS_RELAY_PORT', 'RELAY_PORT').argParser(intArg('--relay-port')).default(7373))
    .addOption(option('--metrics-port <port>', 'relay metrics port', 'POS_RELAY_METRICS_PORT', 'METRICS_PORT').argParser(intArg('--metrics-port')).default(9373))
    .addOption(option('--ttl <seconds>', 'discovery TTL for relay entries', 'POS_RELAY_DISCOVERY_TTL_SECONDS', 'RELAY_TTL_SECONDS').argParser(intArg('--ttl')).default(30))
    .addOption(option('--log-level <level>', LOG_LEVEL_HELP, 'POS_RELAY_LOG_LEVEL', 'LOG_LEVEL').argParser(logLevelArg).default('warn'))
    // as in `run`: without a flag the value stays undefined and POS_RELAY_QUIC (read strictly) or the default decides
    .addOption(new Option('--quic', 'serve QUIC on the relay port (UDP) too, and fail if its native module does not load; on by default, switched off with a warning where the native module does not load (env: POS_RELAY_QUIC=true|false)'))
    .addOption(new Option('--no-quic', 'relay over TCP only: no UDP socket, no QUIC address'))
    // ---- accounts (issue 4), discovery side ----
    .addOption(option('--no-accounts', 'turn accounts off (on by default: an in-memory ticket key, admin secret and a `dev` account are created)'))
    .addOption(option('--tiers-file <file>', 'tiers (JSON object keyed by tier name); default: free, pro, unlimited', 'POS_RELAY_TIERS_FILE', 'TIERS_FILE'))
    .addOption(option('--ticket-ttl <seconds>', `relay ticket lifetime, 1-${MAX_TICKET_TTL_SECONDS}`, 'POS_RELAY_TICKET_TTL_SECONDS', 'TICKET_TTL_SECONDS').argParser(intArg('--ticket-ttl')).default(DEFAULT_TICKET_TTL_SECONDS))
    // ---- end accounts ----
    .action(async (opts: DevOptions) => {
      const secret = randomBytes(24).toString('base64url')
      const { createDiscoveryServer, createMemoryStore } = await import('@pos-relay/discovery')
      const store = createMemoryStore()
      const discoveryLogger = createLogger({ name: 'discovery', level: opts.logLevel })

      // ---- accounts (issue 4), discovery side: memory store, bus and usage sink shared in this
      // process. devAccounts.{verifier, revocations, usageSink, tiers} are what the relay needs. ----
      if (opts.accounts) checkTicketTtl(opts.ticketTtl)
      const devAccounts = opts.accounts
        ? await createDevAccounts({ tiers: await loadTiers(opts.tiersFile), ticketTtlSeconds: opts.ticketTtl })
        : undefined
      const accounts = devAccounts != null
        ? { store: devAccounts.store, issuer: devAccounts.issuer, adminSecret: devAccounts.adminSecret, revocations: devAccounts.revocations, usage: devAccounts.usageSink, tiers: devAccounts.tiers }
        : undefined
      // ---- end accounts ----

      const app = await createDiscoveryServer({ store, p2pSecret: secret, ttlSeconds: opts.ttl, logger: discoveryLogger, ...(accounts != null ? { accounts } : {}) })
      await app.listen({ host: '127.0.0.1', port: opts.port })
      const apiUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

      const base = await newConfig({ p2p_secret: secret, api_url: apiUrl, port: opts.relayPort, id: 'dev-relay' })
      const quicRequested = opts.quic ?? boolEnv('POS_RELAY_QUIC')
      const relayLogger = createLogger({ name: 'relay', level: opts.logLevel })
      const config = await quicOrTcp(parseConfig({
        ...base,
        host: '127.0.0.1',
        announce: [`/ip4/127.0.0.1/tcp/${opts.relayPort}`],
        metrics_host: '127.0.0.1',
        metrics_port: opts.metricsPort,
        drain_seconds: 2,
        quic: quicRequested ?? true
      }), quicRequested, relayLogger)
      // the relay shares the in-memory accounts services with discovery, so auth is on in dev too
      const relay = new RelayServer({
        config,
        logger: relayLogger,
        ...(devAccounts != null
          ? {
              accounts: {
                verifier: devAccounts.verifier,
                revocations: devAccounts.revocations,
                tiers: devAccounts.tiers,
                meter: new UsageMeter({ sink: devAccounts.usageSink, relayId: config.id, flushIntervalMs: config.auth.metering_interval_seconds * 1000 }),
                flushedMonthlyBytes: async (account: string) => await monthlyBytes({ sink: devAccounts.usageSink }, account),
                reservations: createMemoryReservationCounter()
              }
            }
          : {})
      })
      await relay.start()
      await relay.registered

      process.stdout.write([
        'pos-relay dev is running (Ctrl-C to stop)',
        `  discovery API:  ${apiUrl}/api/p2p/relays   (OpenAPI: ${apiUrl}/openapi.json)`,
        `  relay address:  ${relay.addresses.join(' ')}`,
        `  relay metrics:  http://127.0.0.1:${relay.metricsAddress?.port}/metrics`,
        `  try: curl -s ${apiUrl}/api/p2p/relays`,
        `  example app: npm run -w examples/file-transfer listen -- --discovery ${apiUrl}${devAccounts != null ? ` --api-key ${devAccounts.apiKey}` : ''}`,
        // ---- accounts (issue 4) ----
        ...(devAccounts != null
          ? [
              '  accounts:       on (dev only: these credentials live in memory and die with this process)',
              `  dev account:    ${devAccounts.account.id} (name "${devAccounts.account.name}", tier ${devAccounts.account.tier})`,
              `  dev API key:    ${devAccounts.apiKey}`,
              `  admin secret:   ${devAccounts.adminSecret}`,
              `  ticket:         curl -s -X POST ${apiUrl}/api/p2p/tickets -H 'authorization: Bearer ${devAccounts.apiKey}' -H 'content-type: application/json' -d '{"peer_id":"<your peer id>"}'`,
              `  admin:          ADMIN_SECRET=${devAccounts.adminSecret} npx pos-relay accounts list --api-url ${apiUrl}`
            ]
          : ['  accounts:       off']),
        // ---- end accounts ----
        ''
      ].join('\n'))
      handleShutdown(discoveryLogger, async () => {
        await relay.drain()
        await app.close()
        await devAccounts?.close()
      }, async () => {
        await relay.stop()
        await app.close()
        await devAccounts?.close()
      })
    })
}
