/** The auth bench's discovery: accounts on, Redis, ticket keys and one account, set up through the CLI as a user would. */
import { join } from 'node:path'
import type { RedisServer } from '@pos-relay/testing'
import { runCli, startCliServer, type CliServer } from '../lib/cli.ts'
import { config } from './config.ts'
import type { MeteringCheck } from './results.ts'

export interface Discovery { server: CliServer, url: string, adminSecret: string, apiKey: string, account: string, keysFile: string }

/** Discovery with accounts on and Redis, and one account with an API key: all through the CLI. */
export async function startDiscovery (dir: string, redis: RedisServer): Promise<Discovery> {
  const keysFile = join(dir, 'ticket-keys.json')
  await runCli(['keys', 'generate', '--out', keysFile])
  const adminSecret = `bench-admin-${process.pid}-${Date.now()}`
  const server = await startCliServer('discovery', ['discovery', '--host', '127.0.0.1', '--port', '0', '--redis', redis.url, '--ticket-keys-file', keysFile, '--log-level', 'warn'],
    'discovery_ready', { env: { P2P_SECRET: 'bench-p2p', ADMIN_SECRET: adminSecret } })
  const url: string = server.ready.url
  const created = JSON.parse(await runCli(['accounts', 'create', '--name', 'bench', '--tier', config.tier], { API_URL: url, ADMIN_SECRET: adminSecret }))
  return { server, url, adminSecret, apiKey: created.api_key, account: created.account.id, keysFile }
}

/** The account's metered usage (GET /api/admin/usage), summed over the hours. */
export async function usageOf (d: Discovery): Promise<MeteringCheck['usage']> {
  const res = await fetch(`${d.url}/api/admin/usage?account=${encodeURIComponent(d.account)}&format=json`, { headers: { authorization: `Bearer ${d.adminSecret}` }, signal: AbortSignal.timeout(10_000) })
  if (!res.ok) throw new Error(`GET /api/admin/usage: ${res.status} ${await res.text()}`)
  const rows = await res.json() as Array<Record<string, number | string>>
  const sum = (k: string): number => rows.reduce((a, r) => a + Number(r[k] ?? 0), 0)
  return { bytes_to_destination: sum('bytes_to_destination'), bytes_to_source: sum('bytes_to_source'), circuits: sum('circuits'), circuit_seconds: sum('circuit_seconds'), reservation_seconds: sum('reservation_seconds') }
}
