import { Command } from 'commander'
import { option } from '../options.js'
import { adminRequest, printJson, withAdminOptions, type AdminClientOptions } from './admin-client.js'

const ACCOUNTS = '/api/admin/accounts'

function idCommand (name: 'disable' | 'enable' | 'rotate-key', description: string): Command {
  return withAdminOptions(new Command(name).description(description).argument('<id>', 'account id'))
    .action(async (id: string, opts: AdminClientOptions) => {
      printJson(await adminRequest(opts, 'POST', `${ACCOUNTS}/${encodeURIComponent(id)}/${name}`))
    })
}

export function accountsCommand (): Command {
  return new Command('accounts')
    .description('Manage accounts through the discovery admin API (prints JSON)')
    .addCommand(withAdminOptions(new Command('create')
      .description('Create an account; prints {account, api_key}: the API key is shown only this once')
      .addOption(option('--name <name>', 'account name (1-128 characters)').makeOptionMandatory())
      .addOption(option('--tier <tier>', 'tier name (free, pro, unlimited, or one of the tiers file)').makeOptionMandatory()))
      .action(async (opts: AdminClientOptions & { name: string, tier: string }) => {
        printJson(await adminRequest(opts, 'POST', ACCOUNTS, { name: opts.name, tier: opts.tier }))
      }))
    .addCommand(withAdminOptions(new Command('list').description('List accounts'))
      .action(async (opts: AdminClientOptions) => { printJson(await adminRequest(opts, 'GET', ACCOUNTS)) }))
    .addCommand(idCommand('disable', 'Disable an account: its API key stops working and relays end its reservations and circuits'))
    .addCommand(idCommand('enable', 'Enable a disabled account'))
    .addCommand(idCommand('rotate-key', 'Replace the account\'s API key (prints the new one once); the old key stops working at once'))
}
