import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startRedis, waitFor } from '@pos-relay/testing'
import { runCli, spawnCli } from './cli.ts'

const TIERS = { free: { name: 'free', max_reservations: 8, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 } }

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
  const admin = 'admin-' + randomUUID()
  const redis = await startRedis()
  const dir = await mkdtemp(join(tmpdir(), `pos-relay-${opts.account}-`))
  const started: Array<{ kill: (signal: NodeJS.Signals) => Promise<unknown> }> = []
  const stop = async (): Promise<void> => {
    for (const p of started.reverse()) await p.kill('SIGKILL')
    await redis.stop()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const keysFile = join(dir, 'ticket-keys.json')
    assert.equal((await runCli(['keys', 'generate', '--out', keysFile])).code, 0)
    const tiersFile = join(dir, 'tiers.json')
    await writeFile(tiersFile, JSON.stringify(TIERS))
    const port = await freePort()
    const api = `http://127.0.0.1:${port}`
    const discovery = spawnCli(['discovery', '--host', '127.0.0.1', '--port', String(port), '--redis', redis.url, '--ticket-keys-file', keysFile, '--tiers-file', tiersFile],
      { env: { P2P_SECRET: 'p2p', ADMIN_SECRET: admin } })
    started.push(discovery)
    await discovery.waitForJson((o) => o.event === 'discovery_ready')
    const config = join(dir, 'relay.json')
    assert.equal((await runCli(['init', '--config', config, '--api-url', api], { input: 'p2p\n' })).code, 0)
    const metricsPort = await freePort()
    const relay = spawnCli(['run', '--config', config, '--host', '127.0.0.1', '--port', String(await freePort()), '--metrics-host', '127.0.0.1', '--metrics-port', String(metricsPort),
      '--auth', '--redis', redis.url, '--tiers-file', tiersFile])
    started.push(relay)
    await relay.waitForJson((o) => o.event === 'relay_ready')
    const res = await fetch(`${api}/api/admin/accounts`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: opts.account, tier: 'free' }) })
    assert.equal(res.status, 201, await res.clone().text())
    const apiKey = ((await res.json()) as { api_key: string }).api_key
    // the relay registers itself; wait until discovery lists it
    await waitFor(async () => ((await (await fetch(`${api}/api/p2p/relays`)).json()) as unknown[]).length > 0, { timeoutMs: opts.listedTimeoutMs, message: 'relay not listed' })
    return { dir, api, apiKey, metricsPort, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
