import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startRedis, waitFor } from '@pos-relay/testing'
import { runCli, type CliProcess } from './cli.ts'
import { startLocalDiscovery, startLocalRelay } from './relay.ts'

/** the tiers of the accounts fixtures (discovery and relays must agree on them) */
export const TIERS = { free: { name: 'free', max_reservations: 8, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 } }

/** `pos-relay discovery` with accounts on: ticket signing keys, tiers and an admin secret. */
export interface AccountsDiscovery {
  /** the discovery API's base URL */
  api: string
  /** the admin secret (Bearer of /api/admin/...) */
  admin: string
  /** the signing keys file (private: discovery's) and the tiers file, in the given folder */
  keysFile: string
  tiersFile: string
  proc: CliProcess
}

/**
 * Starts `pos-relay discovery` on 127.0.0.1 against `redisUrl` with new ticket keys, `tiers`
 * and a random admin secret; writes its files into `dir`. Resolves once it is ready.
 */
export async function startAccountsDiscovery (opts: { dir: string, redisUrl: string, p2pSecret: string, tiers?: Record<string, unknown> }): Promise<AccountsDiscovery> {
  const admin = 'admin-' + randomUUID()
  const keysFile = join(opts.dir, 'ticket-keys.json')
  assert.equal((await runCli(['keys', 'generate', '--out', keysFile])).code, 0)
  const tiersFile = join(opts.dir, 'tiers.json')
  await writeFile(tiersFile, JSON.stringify(opts.tiers ?? TIERS))
  const { url: api, proc } = await startLocalDiscovery({ secret: opts.p2pSecret, redisUrl: opts.redisUrl, args: ['--ticket-keys-file', keysFile, '--tiers-file', tiersFile], env: { ADMIN_SECRET: admin } })
  return { api, admin, keysFile, tiersFile, proc }
}

/** Creates an account through the admin API; its id and API key. */
export async function createAccount (d: Pick<AccountsDiscovery, 'api' | 'admin'>, name: string, tier = 'free'): Promise<{ id: string, apiKey: string }> {
  const res = await fetch(`${d.api}/api/admin/accounts`, { method: 'POST', headers: { authorization: `Bearer ${d.admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name, tier }) })
  assert.equal(res.status, 201, await res.clone().text())
  const body = (await res.json()) as { account: { id: string }, api_key: string }
  return { id: body.account.id, apiKey: body.api_key }
}

/** A ticket for `peerId` from discovery, with the account's API key. */
export async function ticketFor (api: string, apiKey: string, peerId: string): Promise<string> {
  const res = await fetch(`${api}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: peerId }) })
  assert.equal(res.status, 200, await res.clone().text())
  return ((await res.json()) as { ticket: string }).ticket
}

/** A discovery API issuing tickets and one relay with --auth, both on real Redis, and an account to use them. */
export interface AccountsStack {
  /** a temporary folder for the test's files, removed by stop() */
  dir: string
  /** the discovery API's base URL */
  api: string
  /** the API key of an account of tier free */
  apiKey: string
  /** the relay's metrics port */
  metricsPort: number
  stop: () => Promise<void>
}

/**
 * What a client library's end-to-end test runs against: real Redis, `pos-relay discovery` with
 * ticket keys and tiers, `pos-relay run --auth` registered with it (waited for until listed),
 * and an account created through the admin API.
 */
export async function startAccountsStack (opts: { account: string, listedTimeoutMs: number }): Promise<AccountsStack> {
  const redis = await startRedis()
  const dir = await mkdtemp(join(tmpdir(), `pos-relay-${opts.account}-`))
  const started: Array<{ kill: (signal: NodeJS.Signals) => Promise<unknown> }> = []
  const stop = async (): Promise<void> => {
    for (const p of started.reverse()) await p.kill('SIGKILL')
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const discovery = await startAccountsDiscovery({ dir, redisUrl: redis.url, p2pSecret: 'p2p' })
    started.push(discovery.proc)
    const { api } = discovery
    const args = ['--auth', '--redis', redis.url, '--tiers-file', discovery.tiersFile]
    const { proc: relay, metricsPort } = await startLocalRelay({ dir, secret: 'p2p', initArgs: ['--api-url', api], port: await freePort(), args })
    started.push(relay)
    const { apiKey } = await createAccount(discovery, opts.account)
    // the relay registers itself; wait until discovery lists it
    await waitFor(async () => ((await (await fetch(`${api}/api/p2p/relays`)).json()) as unknown[]).length > 0, { timeoutMs: opts.listedTimeoutMs, message: 'relay not listed' })
    return { dir, api, apiKey, metricsPort, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
