import { Command, CommanderError } from 'commander'
import { accountsCommand } from './commands/accounts.js'
import { devCommand } from './commands/dev.js'
import { discoveryCommand } from './commands/discovery.js'
import { initCommand } from './commands/init.js'
import { keysCommand } from './commands/keys.js'
import { operatorCommand } from './commands/operator.js'
import { runCommand } from './commands/run.js'
import { usageCommand } from './commands/usage.js'

export function program (): Command {
  const major = Number(process.versions.node.split('.')[0])
  const cmd = new Command('pos-relay')
    .description('pos-relay: libp2p Circuit Relay v2 relay, discovery API and local dev mode')
    .version('0.1.0')
    .showHelpAfterError()
    .addCommand(runCommand(), { isDefault: true })
    .addCommand(initCommand())
    .addCommand(discoveryCommand())
    .addCommand(devCommand())
    .addCommand(operatorCommand())
    .addCommand(keysCommand())
    .addCommand(accountsCommand())
    .addCommand(usageCommand())
  if (major < 22) cmd.hook('preAction', () => { throw new Error(`Node ${process.versions.node} is too old: pos-relay needs Node >= 22 (run it through npx from the repository, which brings Node 24)`) })
  return cmd
}

export async function main (argv: string[]): Promise<void> {
  try {
    await program().exitOverride().parseAsync(argv)
  } catch (err: any) {
    if (err instanceof CommanderError) {
      // commander already printed help/version or the usage error
      process.exit(err.exitCode)
    }
    process.stderr.write(`pos-relay: ${err.message}\n`)
    process.exit(err.name === 'ConfigError' ? 2 : 1)
  }
}
