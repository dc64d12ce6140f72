import type { Command } from 'commander'
import { readSecretFile, readTextCapped } from '@pos-relay/shared'
import { readEnv } from '../env.js'
import { option } from '../options.js'

export const DEFAULT_API_URL = 'http://127.0.0.1:8080'

export interface AdminClientOptions { apiUrl: string, adminSecretFile?: string }

/** Adds the flags every admin command takes (so each subcommand's --help lists them). */
export function withAdminOptions (cmd: Command): Command {
  return cmd
    .addOption(option('--api-url <url>', 'discovery API base URL', 'POS_RELAY_API_URL', 'API_URL').default(DEFAULT_API_URL))
    .addOption(option('--admin-secret-file <file>', 'read the admin secret from this file instead of POS_RELAY_ADMIN_SECRET', 'POS_RELAY_ADMIN_SECRET_FILE', 'ADMIN_SECRET_FILE'))
    .addHelpText('after', '\nEnvironment:\n  POS_RELAY_ADMIN_SECRET   the discovery admin secret (required unless --admin-secret-file); never the relays\' P2P secret (ADMIN_SECRET, deprecated, is still read)\n')
}

export async function adminSecret (opts: { adminSecretFile?: string }): Promise<string> {
  if (opts.adminSecretFile != null) return await readSecretFile('--admin-secret-file', opts.adminSecretFile)
  const secret = readEnv('POS_RELAY_ADMIN_SECRET', 'ADMIN_SECRET')?.trim()
  if (secret == null || secret === '') throw new Error('the admin secret is required: set POS_RELAY_ADMIN_SECRET or pass --admin-secret-file')
  return secret
}

/**
 * Calls an admin route and returns the response body (parsed JSON, or text for non-JSON). A non-2xx
 * answer becomes an Error carrying the API's message; the secret is never part of any message.
 */
export async function adminRequest (opts: AdminClientOptions, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const secret = await adminSecret(opts)
  const url = `${opts.apiUrl.replace(/\/+$/, '')}${path}`
  let res: Response
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${secret}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(15_000)
    })
  } catch (err: any) {
    throw new Error(`cannot reach the discovery API at ${opts.apiUrl}: ${err.cause?.code ?? err.cause?.message ?? err.message}`)
  }
  // bounded: admin answers are small; a wrong URL must not make the CLI buffer an endless body
  const text = await readTextCapped(res)
  const json = (() => { try { return JSON.parse(text) } catch { return undefined } })()
  if (!res.ok) {
    const message = typeof json?.message === 'string' ? json.message : text.slice(0, 200)
    throw new Error(`${method} ${path} failed: ${res.status} ${message}`)
  }
  return (res.headers.get('content-type') ?? '').includes('json') ? json : text
}

export function printJson (value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}
