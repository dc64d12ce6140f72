/**
 * Schemathesis against docs/openapi.json on a running discovery API backed by
 * a real redis-server, with accounts on (ticket keys + admin secret), and one
 * Redis outage in the middle:
 *
 *   1. Redis up:     any 5xx fails, and any response the document does not
 *                    describe (status, content type, headers, body schema)
 *   2. Redis down:   the same, except that 503 is the documented answer
 *   3. Redis back:   as in 1, once /readyz answers 200 again
 *
 * Each phase runs every operation group (relays with the p2p secret, admin
 * with the admin secret, tickets with an account API key, public without
 * auth) with a bounded number of examples and a fixed seed.
 *
 *   npm run fuzz:api [-- --examples N] [-- --seed S]
 *
 * Schemathesis comes from PyPI into ~/.cache/pos-relay/schemathesis/<version>
 * (a venv, installed on first use). Not part of `npm test`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { freePort, startRedis, waitFor } from '@pos-relay/testing'

const SCHEMATHESIS_VERSION = '4.32.5'
const ROOT = new URL('..', import.meta.url).pathname
const CLI = join(ROOT, 'packages', 'cli', 'bin', 'pos-relay.js')
const SCHEMA = join(ROOT, 'docs', 'openapi.json')

const { values } = parseArgs({ options: { examples: { type: 'string', default: '25' }, seed: { type: 'string', default: '1' } } })
const EXAMPLES = Number(values.examples)

function schemathesis (): string {
  const dir = join(process.env.POS_RELAY_CACHE ?? join(homedir(), '.cache', 'pos-relay'), 'schemathesis', SCHEMATHESIS_VERSION)
  const st = join(dir, 'venv', 'bin', 'st')
  if (existsSync(st)) return st
  mkdirSync(dir, { recursive: true })
  process.stderr.write(`installing schemathesis ${SCHEMATHESIS_VERSION} into ${dir}\n`)
  rmSync(join(dir, 'venv'), { recursive: true, force: true })
  execFileSync('python3', ['-m', 'venv', join(dir, 'venv')], { stdio: 'inherit' })
  execFileSync(join(dir, 'venv', 'bin', 'pip'), ['install', '--quiet', `schemathesis==${SCHEMATHESIS_VERSION}`], { stdio: 'inherit' })
  return st
}

/** A check for the outage: 503 is the documented answer while Redis is away; any other 5xx is a failure. */
const HOOKS = `
import schemathesis

@schemathesis.check
def no_server_error_but_503(ctx, response, case):
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"{response.status_code} while Redis is down (only 503 is allowed)")
`

interface Proc { child: ChildProcess, stdout: string[] }
function start (args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const p: Proc = { child, stdout: [] }
  createInterface({ input: child.stdout! }).on('line', (l) => { p.stdout.push(l) })
  return p
}

async function main (): Promise<number> {
  const began = Date.now()
  const st = schemathesis()
  const dir = mkdtempSync(join(tmpdir(), 'pos-relay-fuzz-'))
  const hooks = join(dir, 'fuzz_hooks.py')
  writeFileSync(hooks, HOOKS)
  const redis = await startRedis()
  let discovery: Proc | undefined
  const results: Array<{ phase: string, group: string, code: number }> = []
  try {
    const secret = 'fuzz-p2p-secret'
    const admin = 'fuzz-admin-secret'
    const keys = join(dir, 'ticket-keys.json')
    execFileSync(process.execPath, [CLI, 'keys', 'generate', '--out', keys], { stdio: 'ignore' })
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    discovery = start(['discovery', '--host', '127.0.0.1', '--port', String(port), '--redis', redis.url, '--ticket-keys-file', keys],
      { P2P_SECRET: secret, ADMIN_SECRET: admin })
    await waitFor(() => discovery!.stdout.some((l) => l.includes('"discovery_ready"')), { timeoutMs: 30_000, message: 'discovery did not start' })

    // an account, for the tickets endpoint's API key
    const res = await fetch(`${base}/api/admin/accounts`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'fuzz', tier: 'free' }) })
    const account = await res.json() as { api_key?: string }
    if (res.status !== 201 || account.api_key == null) throw new Error(`could not create an account: ${res.status} ${JSON.stringify(account)}`)

    const groups: Array<{ group: string, regex: string, token?: string }> = [
      { group: 'relays', regex: '^/api/p2p/relays', token: secret },
      { group: 'admin', regex: '^/api/admin/', token: admin },
      { group: 'tickets', regex: '^/api/p2p/ticket', token: account.api_key },
      { group: 'public', regex: '^/(healthz|readyz)$' }
    ]
    const checks = 'status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance'
    const run = (phase: string, outage: boolean): void => {
      for (const g of groups) {
        const args = ['run', SCHEMA, '--url', base, '--include-path-regex', g.regex, '--max-examples', String(EXAMPLES), '--seed', values.seed!,
          '--workers', '1', '--no-color', '--suppress-health-check', 'all', '--request-timeout', '10',
          '--checks', outage ? `${checks},no_server_error_but_503` : `${checks},not_a_server_error`,
          ...(g.token != null ? ['-H', `Authorization: Bearer ${g.token}`] : [])]
        process.stdout.write(`\n### ${phase}: ${g.group} (${g.regex})\n`)
        const started = Date.now()
        let code = 0
        try {
          // in the temporary directory: schemathesis keeps its example database in the working directory
          execFileSync(st, args, { stdio: 'inherit', cwd: dir, env: { ...process.env, SCHEMATHESIS_HOOKS: 'fuzz_hooks', PYTHONPATH: dir } })
        } catch (err: any) { code = err.status ?? 1 }
        results.push({ phase, group: g.group, code })
        process.stdout.write(`### ${phase}: ${g.group}: exit ${code} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
      }
    }

    run('redis up', false)
    await redis.stop()
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 503, { timeoutMs: 15_000, message: 'discovery did not notice the Redis outage' })
    run('redis down', true)
    await redis.restart()
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, { timeoutMs: 30_000, message: 'discovery did not recover after Redis came back' })
    run('redis back', false)
  } finally {
    discovery?.child.kill('SIGTERM')
    await redis.stop().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  process.stdout.write(`\n### summary (${EXAMPLES} examples per operation, seed ${values.seed}, ${((Date.now() - began) / 1000).toFixed(0)} s)\n`)
  for (const r of results) process.stdout.write(`  ${r.code === 0 ? 'ok    ' : 'FAILED'} ${r.phase}: ${r.group}\n`)
  return results.every((r) => r.code === 0) ? 0 : 1
}

process.exitCode = await main()
