import { Command } from 'commander'
import { isoDateArg, option } from '../options.js'
import { adminRequest, printJson, withAdminOptions, type AdminClientOptions } from './admin-client.js'

interface UsageOptions extends AdminClientOptions { account?: string, from?: string, to?: string, format: 'json' | 'csv' }

export function usageCommand (): Command {
  return withAdminOptions(new Command('usage')
    .description('Metered usage per account and UTC hour (bytes each direction, circuits, circuit-seconds, reservation-seconds) from the discovery admin API')
    .addOption(option('--account <id>', 'only this account (default: all)'))
    .addOption(option('--from <iso>', 'start, e.g. 2030-01-01 or 2030-01-01T10:00:00Z, rounded down to the hour (default: start of this UTC month)').argParser(isoDateArg('--from')))
    .addOption(option('--to <iso>', 'end, exclusive (default: now)').argParser(isoDateArg('--to')))
    .addOption(option('--format <format>', 'json or csv').choices(['json', 'csv']).default('json')))
    .action(async (opts: UsageOptions) => {
      const q = new URLSearchParams({ format: opts.format })
      if (opts.account != null) q.set('account', opts.account)
      if (opts.from != null) q.set('from', opts.from)
      if (opts.to != null) q.set('to', opts.to)
      const body = await adminRequest(opts, 'GET', `/api/admin/usage?${q.toString()}`)
      if (opts.format === 'csv') process.stdout.write(String(body))
      else printJson(body)
    })
}
