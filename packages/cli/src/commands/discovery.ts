import { readFile } from 'node:fs/promises'
import { Command } from 'commander'
import { createDiscoveryServer, createMemoryStore, createRedisStore, type RelayStore } from '@pos-relay/discovery'
import { createLogger } from '@pos-relay/shared'
import { intArg, LOG_LEVEL_HELP, option } from '../options.js'
import { handleShutdown } from '../shutdown.js'

export const DEFAULT_DISCOVERY_PORT = 8080

interface DiscoveryOptions { port: number, host: string, redis?: string, ttl: number, p2pSecretFile?: string, logLevel: string }

async function secretFrom (opts: DiscoveryOptions): Promise<string> {
  if (opts.p2pSecretFile != null) return (await readFile(opts.p2pSecretFile, 'utf8')).trim()
  const secret = process.env.P2P_SECRET?.trim()
  if (secret == null || secret === '') throw new Error('the p2p secret is required: set P2P_SECRET or pass --p2p-secret-file')
  return secret
}

export function discoveryCommand (): Command {
  return new Command('discovery')
    .description('Run the discovery API: GET/POST /api/p2p/relays, relays kept in Redis with a TTL (or in memory without --redis)')
    .addOption(option('-p, --port <port>', 'HTTP port', 'DISCOVERY_PORT').argParser(intArg('--port')).default(DEFAULT_DISCOVERY_PORT))
    .addOption(option('--host <ip>', 'address to bind', 'DISCOVERY_HOST').default('0.0.0.0'))
    .addOption(option('--redis <url>', 'Redis URL, e.g. redis://127.0.0.1:6379; without it relays are kept in this process\'s memory', 'REDIS_URL'))
    .addOption(option('--ttl <seconds>', 'seconds a relay stays listed after its last heartbeat', 'RELAY_TTL_SECONDS').argParser(intArg('--ttl')).default(30))
    .addOption(option('--p2p-secret-file <file>', 'read the relays\' p2p secret from this file instead of P2P_SECRET', 'P2P_SECRET_FILE'))
    .addOption(option('--log-level <level>', LOG_LEVEL_HELP, 'LOG_LEVEL').default('info'))
    .addHelpText('after', '\nEnvironment:\n  P2P_SECRET   the secret relays send as `Authorization: Bearer <secret>` (required unless --p2p-secret-file)\n')
    .action(async (opts: DiscoveryOptions) => {
      if (opts.ttl < 1) throw new Error('--ttl must be at least 1 second')
      const secret = await secretFrom(opts)
      const logger = createLogger({ name: 'discovery', level: opts.logLevel })
      const store: RelayStore = opts.redis != null
        ? createRedisStore({ url: opts.redis, logger })
        : createMemoryStore()
      const app = await createDiscoveryServer({ store, p2pSecret: secret, ttlSeconds: opts.ttl, logger })
      await app.listen({ host: opts.host, port: opts.port })
      const port = (app.server.address() as { port: number }).port
      process.stdout.write(JSON.stringify({ event: 'discovery_ready', url: `http://${opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host}:${port}`, store: opts.redis != null ? 'redis' : 'memory', ttl_seconds: opts.ttl }) + '\n')
      const close = async (): Promise<void> => { await app.close(); await store.close() }
      handleShutdown(logger, close, close)
    })
}
