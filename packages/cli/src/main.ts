import { Command, CommanderError } from 'commander'
import { accountsCommand } from './commands/accounts.js'
import { checkCommand } from './commands/check.js'
import { devCommand } from './commands/dev.js'
import { discoveryCommand } from './commands/discovery.js'
import { initCommand } from './commands/init.js'
import { keysCommand } from './commands/keys.js'
import { operatorCommand } from './commands/operator.js'
import { runCommand } from './commands/run.js'
import { usageCommand } from './commands/usage.js'
import { applyDeprecatedEnv, jsonWarner, setDeprecationWarner, textWarner } from './env.js'
import { unknownCommandMessage } from './suggest.js'

/** commands whose logs are JSON lines: their deprecation warnings are JSON log lines too */
const JSON_LOGGING: Record<string, string> = { run: 'relay', discovery: 'discovery', operator: 'operator', dev: 'dev' }

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
    .addCommand(checkCommand())
  // `run` is the default command, so commander hands it any unknown word and says "too many arguments
  // for 'run'": a word where a command name goes is refused here, naming the closest command
  cmd.hook('preSubcommand', (parent, sub) => {
    const word = parent.args[0]
    if (sub.name() !== 'run' || word == null || word.startsWith('-') || word === 'run') return
    // the message lists the commands, so the full help (showHelpAfterError) would only bury it
    process.stderr.write(`pos-relay: ${unknownCommandMessage(word, parent.commands.map((c) => c.name()))}\n`)
    throw new CommanderError(1, 'commander.unknownCommand', `unknown command '${word}'`)
  })
  cmd.hook('preAction', (_program, action) => {
    const component = JSON_LOGGING[action.name()]
    setDeprecationWarner(action.parent === cmd && component != null ? jsonWarner(component) : textWarner)
    applyDeprecatedEnv(action)
  })
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
