import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createRedisUsageSink, parseTicketKeys, TicketVerifier, ticketKeysUrl, UsageMeter } from '@pos-relay/accounts'
import { freePort, useRedis, waitFor } from '@pos-relay/testing'
import { runCli, spawnCli, type CliProcess } from '../../../e2e/test/helpers/cli.ts'

const PEER = '12D3KooWGTT9QsbssEwn88dneQpv7Agw8MfFvS9jvdZ3V9GrqHNh'
let dir: string
before(async () => { dir = await mkdtemp(join(tmpdir(), 'pos-relay-cli-accounts-')) })
after(async () => { await rm(dir, { recursive: true, force: true }) })

const json = (s: string): any => JSON.parse(s)

describe('pos-relay keys', () => {
  it('generate prints a JSON array with one private Ed25519 JWK', async () => {
    const res = await runCli(['keys', 'generate'])
    assert.equal(res.code, 0, res.stderr)
    const keys = parseTicketKeys(json(res.stdout))
    assert.equal(keys.length, 1)
    assert.equal(keys[0]?.alg, 'EdDSA')
  })

  it('generate --out writes mode 0600, refuses to overwrite without --force; --add-to prepends for rotation', async () => {
    const file = join(dir, 'keys.json')
    const first = await runCli(['keys', 'generate', '--out', file])
    assert.equal(first.code, 0, first.stderr)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    const [k1] = parseTicketKeys(json(await readFile(file, 'utf8')))
    assert.equal(json(first.stdout).kid, k1?.kid)
    assert.equal(first.stdout.includes(k1!.d), false, 'the private key is not printed')

    const again = await runCli(['keys', 'generate', '--out', file])
    assert.notEqual(again.code, 0)
    assert.match(again.stderr, /already exists.*--force/)
    assert.equal(parseTicketKeys(json(await readFile(file, 'utf8')))[0]?.kid, k1?.kid)

    const added = await runCli(['keys', 'generate', '--add-to', file])
    assert.equal(added.code, 0, added.stderr)
    const keys = parseTicketKeys(json(await readFile(file, 'utf8')))
    assert.equal(keys.length, 2)
    assert.equal(keys[1]?.kid, k1?.kid, 'the old key stays, after the new one')
    assert.equal(json(added.stdout).kid, keys[0]?.kid)
    assert.deepEqual(json(added.stdout).keys, keys.map((k) => k.kid))
    assert.equal((await stat(file)).mode & 0o777, 0o600)

    const pub = await runCli(['keys', 'public', '--in', file])
    assert.equal(pub.code, 0, pub.stderr)
    const jwks = json(pub.stdout)
    assert.deepEqual(jwks.keys.map((k: { kid: string }) => k.kid), keys.map((k) => k.kid))
    assert.equal(pub.stdout.includes(keys[0]!.d), false)

    const forced = await runCli(['keys', 'generate', '--out', file, '--force'])
    assert.equal(forced.code, 0, forced.stderr)
    assert.equal(parseTicketKeys(json(await readFile(file, 'utf8'))).length, 1)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
  })

  it('explains bad usage', async () => {
    const both = await runCli(['keys', 'generate', '--out', join(dir, 'a.json'), '--add-to', join(dir, 'b.json')])
    assert.notEqual(both.code, 0)
    assert.match(both.stderr, /either --out or --add-to/)
    const missing = await runCli(['keys', 'generate', '--add-to', join(dir, 'missing.json')])
    assert.notEqual(missing.code, 0)
    assert.match(missing.stderr, /does not exist/)
    const garbage = join(dir, 'garbage.json')
    await writeFile(garbage, JSON.stringify([{ kty: 'OKP', crv: 'Ed25519', x: 'short', d: 'secret-material', kid: 'k' }]))
    const bad = await runCli(['keys', 'public', '--in', garbage])
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /invalid ticket keys/)
    assert.doesNotMatch(bad.stderr, /secret-material/)
  })
})

describe('pos-relay discovery with accounts, and the admin commands', { timeout: 120_000 }, () => {
  let discovery: CliProcess
  let url: string
  let keysFile: string
  const ADMIN = 'cli-admin-secret-4c1a'
  let adminFile: string

  // declared before useRedis: hooks run in declaration order, so discovery stops before Redis
  after(async () => {
    await discovery?.kill()
  })
  const redis = useRedis()
  before(async () => {
    keysFile = join(dir, 'discovery-keys.json')
    adminFile = join(dir, 'admin-secret')
    await writeFile(adminFile, `${ADMIN}\n`, { mode: 0o600 })
    assert.equal((await runCli(['keys', 'generate', '--out', keysFile])).code, 0)
    const port = await freePort()
    discovery = spawnCli(['discovery', '--port', String(port), '--host', '127.0.0.1', '--redis', redis.url, '--ticket-keys-file', keysFile, '--admin-secret-file', adminFile, '--ticket-ttl', '900'], { env: { P2P_SECRET: 'cli-p2p-secret' } })
    const ready = await discovery.waitForJson((o) => o.event === 'discovery_ready')
    assert.equal(ready.accounts, true)
    assert.equal(ready.ticket_ttl_seconds, 900)
    assert.deepEqual(ready.tiers, ['free', 'pro', 'unlimited'])
    url = ready.url
  })

  const admin = (args: string[], env: Record<string, string> = { ADMIN_SECRET: ADMIN }) => runCli([...args, '--api-url', url], { env })

  it('create, list, disable, enable, rotate-key; the API key gets tickets relays can verify', async () => {
    const created = await admin(['accounts', 'create', '--name', 'Acme', '--tier', 'pro'])
    assert.equal(created.code, 0, created.stderr)
    const { account, api_key } = json(created.stdout)
    assert.equal(account.tier, 'pro')
    assert.match(api_key, /^pra_/)

    const getTicket = (key: string) => fetch(`${url}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: PEER }) })
    const t = await getTicket(api_key)
    assert.equal(t.status, 200)
    const body = (await t.json()) as { ticket: string }
    const claims = await new TicketVerifier({ jwksUrl: ticketKeysUrl(url) }).verify(body.ticket, PEER)
    assert.equal(claims.account, account.id)
    assert.equal(claims.exp - claims.iat, 900)

    const list = await admin(['accounts', 'list'])
    assert.equal(list.code, 0, list.stderr)
    assert.deepEqual(json(list.stdout).map((a: { id: string }) => a.id), [account.id])

    const disabled = await admin(['accounts', 'disable', account.id])
    assert.equal(disabled.code, 0, disabled.stderr)
    assert.equal(json(disabled.stdout).disabled, true)
    assert.equal((await getTicket(api_key)).status, 401)
    // the secret from a file instead of ADMIN_SECRET
    const enabled = await admin(['accounts', 'enable', account.id, '--admin-secret-file', adminFile], { ADMIN_SECRET: '' })
    assert.equal(enabled.code, 0, enabled.stderr)
    assert.equal(json(enabled.stdout).disabled, false)
    assert.equal((await getTicket(api_key)).status, 200)

    const rotated = await admin(['accounts', 'rotate-key', account.id])
    assert.equal(rotated.code, 0, rotated.stderr)
    const newKey = json(rotated.stdout).api_key
    assert.notEqual(newKey, api_key)
    assert.equal((await getTicket(api_key)).status, 401)
    assert.equal((await getTicket(newKey)).status, 200)
  })

  it('usage as JSON and CSV', async () => {
    const sink = createRedisUsageSink({ redisUrl: redis.url })
    const meter = new UsageMeter({ sink, relayId: 'cli-test' })
    meter.add('acc_cli0000000000000', { bytes_to_destination: 1234, bytes_to_source: 55, circuits: 1, circuit_seconds: 2.5 }, new Date('2030-06-01T05:10:00Z'))
    meter.add('acc_other00000000000', { reservation_seconds: 9 }, new Date('2030-06-01T06:10:00Z'))
    await meter.stop()
    await sink.close()
    const range = ['--from', '2030-06-01', '--to', '2030-06-02T00:00:00Z']
    const asJson = await admin(['usage', '--account', 'acc_cli0000000000000', ...range])
    assert.equal(asJson.code, 0, asJson.stderr)
    assert.deepEqual(json(asJson.stdout), [{ account: 'acc_cli0000000000000', hour: '2030-06-01T05:00:00.000Z', bytes_to_destination: 1234, bytes_to_source: 55, circuits: 1, circuit_seconds: 2.5, reservation_seconds: 0 }])
    const csv = await admin(['usage', ...range, '--format', 'csv'])
    assert.equal(csv.code, 0, csv.stderr)
    assert.deepEqual(csv.stdout.split('\n'), [
      'account,hour,bytes_to_destination,bytes_to_source,circuits,circuit_seconds,reservation_seconds',
      'acc_cli0000000000000,2030-06-01T05:00:00.000Z,1234,55,1,2.5,0',
      'acc_other00000000000,2030-06-01T06:00:00.000Z,0,0,0,0,9',
    ])
    const badFormat = await admin(['usage', '--format', 'xml'])
    assert.notEqual(badFormat.code, 0)
    assert.match(badFormat.stderr, /json, csv/)
  })

  it('errors: wrong or missing admin secret, the p2p secret, unknown account, unreachable API', async () => {
    for (const env of [{ ADMIN_SECRET: 'wrong' }, { ADMIN_SECRET: 'cli-p2p-secret' }]) {
      const res = await admin(['accounts', 'list'], env)
      assert.equal(res.code, 1)
      assert.match(res.stderr, /401 missing or invalid admin secret/)
      assert.doesNotMatch(res.stderr, /cli-p2p-secret|wrong/)
    }
    const none = await admin(['accounts', 'list'], { ADMIN_SECRET: '' })
    assert.equal(none.code, 1)
    assert.match(none.stderr, /ADMIN_SECRET or pass --admin-secret-file/)
    const unknown = await admin(['accounts', 'disable', 'acc_0000000000000000'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /404 account not found/)
    const badTier = await admin(['accounts', 'create', '--name', 'x', '--tier', 'gold'])
    assert.equal(badTier.code, 1)
    assert.match(badTier.stderr, /unknown tier "gold"/)
    const noName = await admin(['accounts', 'create', '--tier', 'free'])
    assert.notEqual(noName.code, 0)
    assert.match(noName.stderr, /--name/)
    const down = await runCli(['accounts', 'list', '--api-url', `http://127.0.0.1:${await freePort()}`], { env: { ADMIN_SECRET: ADMIN } })
    assert.equal(down.code, 1)
    assert.match(down.stderr, /cannot reach the discovery API/)
  })

  it('the discovery logs hold no API key, ticket or secret', async () => {
    const created = json((await admin(['accounts', 'create', '--name', 'log-check', '--tier', 'free'])).stdout)
    await fetch(`${url}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${created.api_key}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: PEER }) })
    await admin(['accounts', 'list'], { ADMIN_SECRET: 'wrong-admin-guess' })
    await new Promise((r) => setTimeout(r, 200))
    const logs = discovery.stderr.join('\n')
    assert.ok(logs.includes('account created'))
    for (const secret of [created.api_key, ADMIN, 'cli-p2p-secret', 'wrong-admin-guess']) assert.equal(logs.includes(secret), false)
  })
})

describe('pos-relay discovery account configuration errors', () => {
  it('needs both a keys file and an admin secret, valid tiers and TTL, and distinct secrets', async () => {
    const keys = join(dir, 'cfg-keys.json')
    assert.equal((await runCli(['keys', 'generate', '--out', keys])).code, 0)
    const tiers = join(dir, 'tiers.json')
    await writeFile(tiers, JSON.stringify({ gold: { max_reservations: 0, circuit_data_limit_bytes: 1, circuit_duration_seconds: 1, monthly_bytes: 1 } }))
    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [['--ticket-keys-file', keys], {}, 2, /admin secret too/],
      [[], { ADMIN_SECRET: 'a' }, 2, /ticket keys file too/],
      [['--ticket-keys-file', join(dir, 'nope.json')], { ADMIN_SECRET: 'a' }, 2, /does not exist/],
      [['--ticket-keys-file', keys, '--tiers-file', tiers], { ADMIN_SECRET: 'a' }, 2, /gold\.max_reservations/],
      [['--ticket-keys-file', keys, '--ticket-ttl', '3601'], { ADMIN_SECRET: 'a' }, 2, /--ticket-ttl/],
      [['--ticket-keys-file', keys], { ADMIN_SECRET: 'same' }, 1, /must differ/],
    ]
    for (const [args, env, code, message] of cases) {
      const res = await runCli(['discovery', '--port', '0', '--host', '127.0.0.1', ...args], { env: { P2P_SECRET: 'same', ADMIN_SECRET: '', ...env } })
      assert.equal(res.code, code, `${args.join(' ')}: ${res.stderr}`)
      assert.match(res.stderr, message)
    }
  })

  it('starts without accounts when neither is given', async () => {
    const p = spawnCli(['discovery', '--port', '0', '--host', '127.0.0.1'], { env: { P2P_SECRET: 's', ADMIN_SECRET: '' } })
    try {
      const ready = await p.waitForJson((o) => o.event === 'discovery_ready')
      assert.equal(ready.accounts, false)
      const res = await fetch(`${ready.url}/api/p2p/ticket-keys`)
      assert.equal(res.status, 404)
    } finally {
      await p.kill()
    }
  })
})

describe('pos-relay dev accounts', { timeout: 90_000 }, () => {
  async function dev (extra: string[]): Promise<{ p: CliProcess, url: string }> {
    const [port, relayPort, metricsPort] = [await freePort(), await freePort(), await freePort()]
    const p = spawnCli(['dev', '--port', String(port), '--relay-port', String(relayPort), '--metrics-port', String(metricsPort), ...extra])
    await waitFor(() => p.stdout.some((l) => l.includes('accounts:')), { timeoutMs: 30_000, message: `dev never printed its accounts line\n${p.stderr.join('\n')}` })
    return { p, url: `http://127.0.0.1:${port}` }
  }
  const field = (p: CliProcess, label: string) => p.stdout.find((l) => l.trim().startsWith(label))?.split(/\s+/).filter(Boolean)[label.split(' ').length]

  it('turns accounts on by default and prints the dev API key and admin secret', async () => {
    const { p, url } = await dev([])
    try {
      const apiKey = field(p, 'dev API key:') as string
      const adminSecret = field(p, 'admin secret:') as string
      assert.match(apiKey, /^pra_/)
      assert.ok(adminSecret.length >= 24)
      const t = await fetch(`${url}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: PEER }) })
      assert.equal(t.status, 200)
      assert.equal(((await t.json()) as { tier: string }).tier, 'free')
      const list = await runCli(['accounts', 'list', '--api-url', url], { env: { ADMIN_SECRET: adminSecret } })
      assert.equal(list.code, 0, list.stderr)
      assert.deepEqual(json(list.stdout).map((a: { name: string }) => a.name), ['dev'])
      assert.equal(await p.kill('SIGTERM'), 0)
    } finally {
      await p.kill('SIGKILL')
    }
  })

  it('--no-accounts turns them off', async () => {
    const { p, url } = await dev(['--no-accounts'])
    try {
      assert.ok(p.stdout.some((l) => /accounts:\s+off/.test(l)))
      assert.equal((await fetch(`${url}/api/p2p/ticket-keys`)).status, 404)
    } finally {
      await p.kill('SIGKILL')
    }
  })
})

describe('--help of the account commands', () => {
  const admin = ['--api-url', 'API_URL', '--admin-secret-file', 'ADMIN_SECRET_FILE', 'ADMIN_SECRET']
  const expectations: [string[], string[]][] = [
    [['keys', 'generate'], ['--out', '--add-to', '--force']],
    [['keys', 'public'], ['--in', 'TICKET_KEYS_FILE']],
    [['accounts', 'create'], ['--name', '--tier', ...admin]],
    [['accounts', 'list'], admin],
    [['accounts', 'disable'], admin],
    [['accounts', 'enable'], admin],
    [['accounts', 'rotate-key'], admin],
    [['usage'], ['--account', '--from', '--to', '--format', ...admin]],
    [['discovery'], ['--admin-secret-file', 'ADMIN_SECRET_FILE', 'ADMIN_SECRET', '--ticket-keys-file', 'TICKET_KEYS_FILE', '--ticket-ttl', 'TICKET_TTL_SECONDS', '--tiers-file', 'TIERS_FILE']],
    [['dev'], ['--no-accounts', '--tiers-file', 'TIERS_FILE', '--ticket-ttl', 'TICKET_TTL_SECONDS']],
  ]
  for (const [command, words] of expectations) {
    it(`${command.join(' ')} --help lists every flag and environment variable`, async () => {
      const res = await runCli([...command, '--help'])
      assert.equal(res.code, 0)
      for (const word of words) assert.ok(res.stdout.includes(word), `${command.join(' ')} --help lacks ${word}`)
    })
  }
  it('the top-level help lists keys, accounts and usage', async () => {
    const res = await runCli(['--help'])
    for (const word of ['keys', 'accounts', 'usage']) assert.match(res.stdout, new RegExp(`\\b${word}\\b`))
  })
})
