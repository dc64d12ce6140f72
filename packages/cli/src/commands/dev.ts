import { randomBytes } from 'node:crypto'
import { Command } from 'commander'
import { createDiscoveryServer, createMemoryStore } from '@pos-relay/discovery'
import { newConfig, parseConfig, RelayServer } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { intArg, LOG_LEVEL_HELP, option } from '../options.js'
import { handleShutdown } from '../shutdown.js'
import { DEFAULT_DISCOVERY_PORT } from './discovery.js'

interface DevOptions { port: number, relayPort: number, metricsPort: number, ttl: number, logLevel: string }

export function devCommand (): Command {
  return new Command('dev')
    .description('Local mode in one process: the discovery API on an in-memory store plus one relay on 127.0.0.1, registered with it')
    .addOption(option('-p, --port <port>', 'discovery HTTP port', 'DISCOVERY_PORT').argParser(intArg('--port')).default(DEFAULT_DISCOVERY_PORT))
    .addOption(option('--relay-port <port>', 'relay TCP port', 'RELAY_PORT').argParser(intArg('--relay-port')).default(7373))
    .addOption(option('--metrics-port <port>', 'relay metrics port', 'METRICS_PORT').argParser(intArg('--metrics-port')).default(9373))
    .addOption(option('--ttl <seconds>', 'discovery TTL for relay entries', 'RELAY_TTL_SECONDS').argParser(intArg('--ttl')).default(30))
    .addOption(option('--log-level <level>', LOG_LEVEL_HELP, 'LOG_LEVEL').default('warn'))
    .action(async (opts: DevOptions) => {
      const secret = randomBytes(24).toString('base64url')
      const store = createMemoryStore()
      const discoveryLogger = createLogger({ name: 'discovery', level: opts.logLevel })
      const app = await createDiscoveryServer({ store, p2pSecret: secret, ttlSeconds: opts.ttl, logger: discoveryLogger })
      await app.listen({ host: '127.0.0.1', port: opts.port })
      const apiUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

      const base = await newConfig({ p2p_secret: secret, api_url: apiUrl, port: opts.relayPort, id: 'dev-relay' })
      const config = parseConfig({
        ...base,
        host: '127.0.0.1',
        announce: [`/ip4/127.0.0.1/tcp/${opts.relayPort}`],
        metrics_host: '127.0.0.1',
        metrics_port: opts.metricsPort,
        drain_seconds: 2
      })
      const relay = new RelayServer({ config, logger: createLogger({ name: 'relay', level: opts.logLevel }) })
      await relay.start()
      await relay.registered

      process.stdout.write([
        'pos-relay dev is running (Ctrl-C to stop)',
        `  discovery API:  ${apiUrl}/api/p2p/relays   (OpenAPI: ${apiUrl}/openapi.json)`,
        `  relay address:  ${relay.addresses.join(' ')}`,
        `  relay metrics:  http://127.0.0.1:${relay.metricsAddress?.port}/metrics`,
        `  try: curl -s ${apiUrl}/api/p2p/relays`,
        `  example app: npm run -w examples/file-transfer listen -- --discovery ${apiUrl}`,
        ''
      ].join('\n'))
      handleShutdown(discoveryLogger, async () => {
        await relay.drain()
        await app.close()
      }, async () => {
        await relay.stop()
        await app.close()
      })
    })
}
