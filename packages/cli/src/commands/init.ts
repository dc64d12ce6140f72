import { resolve } from 'node:path'
import { Command } from 'commander'
import { DEFAULT_PORT, newConfig, peerIdOfKeypair, writeConfig } from '@pos-relay/relay'
import { intArg, option } from '../options.js'
import { readSecret } from '../secret.js'

export function initCommand (): Command {
  return new Command('init')
    .description('Create a relay config: prompts for the p2p secret on a terminal, else reads POS_RELAY_P2P_SECRET or the first line of stdin. Generates the relay identity (Ed25519) and writes the file with mode 0600.')
    .addOption(option('-c, --config <file>', 'config file to write', 'POS_RELAY_CONFIG', 'CONFIG_PATH').default('./config.json'))
    .addOption(option('--api-url <url>', 'discovery API base URL the relay registers with', 'POS_RELAY_API_URL', 'API_URL'))
    .addOption(option('-p, --port <port>', 'TCP port the relay listens on', 'POS_RELAY_PORT', 'RELAY_PORT').argParser(intArg('--port')).default(DEFAULT_PORT))
    .addOption(option('--id <id>', 'relay id towards the discovery API (default: a new UUID)', 'POS_RELAY_ID', 'RELAY_ID'))
    .addOption(option('-f, --force', 'overwrite an existing config file'))
    .addHelpText('after', '\nEnvironment:\n  POS_RELAY_P2P_SECRET   the p2p secret (skips the prompt and stdin); P2P_SECRET, deprecated, is still read\n')
    .action(async (opts: { config: string, apiUrl?: string, port: number, id?: string, force?: boolean }) => {
      const secret = await readSecret()
      if (secret === '') throw new Error('no p2p secret given (prompt, stdin or POS_RELAY_P2P_SECRET)')
      const config = await newConfig({ p2p_secret: secret, api_url: opts.apiUrl, port: opts.port, id: opts.id })
      const path = resolve(opts.config)
      await writeConfig(path, config, opts.force === true)
      process.stdout.write(JSON.stringify({ config: path, id: config.id, peer_id: peerIdOfKeypair(config.keypair), port: config.port, api_url: config.api_url ?? null }) + '\n')
    })
}
