import assert from 'node:assert/strict'
import { chmod, mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdOfKeypair } from '@pos-relay/relay'
import { runCli, spawnCli } from '../../../e2e/test/helpers/cli.ts'
import { program } from 'pos-relay'
import type { Command } from 'commander'

let dir: string

/**
 * Like runCli, for commands that must stop at start-up: a process still running after `ms`
 * (the bug: it came up and served) is killed and reported as 'still running', so the test fails
 * instead of hanging.
 */
async function runExpectingExit (args: string[], opts: { env?: Record<string, string> } = {}, ms = 15_000): Promise<{ code: number | string, stdout: string, stderr: string }> {
  const p = spawnCli(args, opts)
  const timer = setTimeout(() => { void p.kill('SIGKILL') }, ms)
  const code = await p.exited.finally(() => { clearTimeout(timer) })
  return { code: p.child.signalCode === 'SIGKILL' ? 'still running' : code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') }
}
before(async () => { dir = await mkdtemp(join(tmpdir(), 'pos-relay-cli-')) })
after(async () => { await rm(dir, { recursive: true, force: true }) })

describe('pos-relay init', () => {
  it('reads the secret from stdin and writes a 0600 config with the original fields', async () => {
    const file = join(dir, 'stdin.json')
    const res = await runCli(['init', '--config', file, '--api-url', 'http://127.0.0.1:1234', '--port', '7444'], { input: 'from-stdin\n' })
    assert.equal(res.code, 0, res.stderr)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    const config = JSON.parse(await readFile(file, 'utf8'))
    assert.equal(config.p2p_secret, 'from-stdin')
    assert.equal(config.api_url, 'http://127.0.0.1:1234')
    assert.equal(config.port, 7444)
    assert.match(config.id, /^[0-9a-f-]{36}$/)
    assert.match(config.keypair, /^[0-9a-f]+$/)
    const out = JSON.parse(res.stdout)
    assert.equal(out.peer_id, peerIdOfKeypair(config.keypair))
    assert.doesNotMatch(res.stdout + res.stderr, /from-stdin/, 'the secret is never printed')
  })

  it('prefers P2P_SECRET from the environment', async () => {
    const file = join(dir, 'env.json')
    const res = await runCli(['init', '--config', file], { env: { P2P_SECRET: 'from-env' }, input: 'ignored\n' })
    assert.equal(res.code, 0, res.stderr)
    assert.equal(JSON.parse(await readFile(file, 'utf8')).p2p_secret, 'from-env')
  })

  it('refuses to overwrite without --force, and overwrites with it', async () => {
    const file = join(dir, 'exists.json')
    await writeFile(file, 'keep me')
    const refused = await runCli(['init', '--config', file], { input: 's\n' })
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /already exists.*--force/)
    assert.equal(await readFile(file, 'utf8'), 'keep me')
    const forced = await runCli(['init', '--config', file, '--force'], { input: 's\n' })
    assert.equal(forced.code, 0, forced.stderr)
    assert.equal(JSON.parse(await readFile(file, 'utf8')).p2p_secret, 's')
  })

  it('rejects an empty secret and a bad port', async () => {
    const empty = await runCli(['init', '--config', join(dir, 'empty.json')], { input: '\n' })
    assert.notEqual(empty.code, 0)
    assert.match(empty.stderr, /no p2p secret/)
    const port = await runCli(['init', '--config', join(dir, 'port.json'), '--port', 'abc'], { input: 's\n' })
    assert.notEqual(port.code, 0)
    assert.match(port.stderr, /--port must be a non-negative integer/)
  })
})

describe('pos-relay init --force and the secret', () => {
  it('replaces an existing file by a new 0600 one: the secret never lands in the old, readable file', async () => {
    const file = join(dir, 'readable.json')
    await writeFile(file, 'old content')
    await chmod(file, 0o644)
    // a reader holding the old file open (as anyone could, at 0644) must never see the secret
    const old = await open(file, 'r')
    try {
      const forced = await runCli(['init', '--config', file, '--force'], { input: 'force-secret-31\n' })
      assert.equal(forced.code, 0, forced.stderr)
      assert.equal((await stat(file)).mode & 0o777, 0o600)
      assert.equal(JSON.parse(await readFile(file, 'utf8')).p2p_secret, 'force-secret-31')
      assert.equal((await old.readFile('utf8')).includes('force-secret-31'), false, 'the secret was written into the 0644 file')
    } finally {
      await old.close()
    }
  })

  it('refuses a symlink at the config path, with or without --force, leaving its target alone', async () => {
    const target = join(dir, 'symlink-target.txt')
    await writeFile(target, 'not yours')
    const link = join(dir, 'link.json')
    await symlink(target, link)
    const forced = await runCli(['init', '--config', link, '--force'], { input: 's\n' })
    assert.equal(forced.code, 2, forced.stderr)
    assert.match(forced.stderr, /is a symbolic link; refusing to follow it/)
    const plain = await runCli(['init', '--config', link], { input: 's\n' })
    assert.notEqual(plain.code, 0)
    assert.equal(await readFile(target, 'utf8'), 'not yours')
  })
})

describe('pos-relay run', () => {
  it('explains a missing config file', async () => {
    const res = await runCli(['run', '--config', join(dir, 'missing.json')])
    assert.equal(res.code, 2)
    assert.match(res.stderr, /does not exist.*pos-relay init/)
  })

  it('names the broken field of an invalid config, without printing the secret', async () => {
    const file = join(dir, 'bad.json')
    await writeFile(file, JSON.stringify({ id: 'r1', p2p_secret: 'top-secret', port: 99999, keypair: 'zz' }))
    const res = await runCli(['run', '--config', file])
    assert.equal(res.code, 2)
    assert.match(res.stderr, /port/)
    assert.match(res.stderr, /keypair/)
    assert.doesNotMatch(res.stderr, /top-secret/)
  })

  it('rejects malformed JSON and a bad --announce multiaddr', async () => {
    const file = join(dir, 'garbage.json')
    await writeFile(file, '{ not json')
    const res = await runCli(['run', '--config', file])
    assert.equal(res.code, 2)
    assert.match(res.stderr, /not valid JSON/)
    const good = join(dir, 'good.json')
    assert.equal((await runCli(['init', '--config', good], { input: 's\n' })).code, 0)
    const bad = await runCli(['run', '--config', good, '--announce', '/ip4/nonsense/tcp/1'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /announce\.0: not a valid multiaddr/)
  })

  it('refuses at start a tiers file discovery would refuse and durations setTimeout cannot hold, naming the field', async () => {
    const good = join(dir, 'limits.json')
    assert.equal((await runCli(['init', '--config', good], { input: 's\n' })).code, 0)
    const tiers = join(dir, 'relay-tiers.json')
    await writeFile(tiers, JSON.stringify({ gold: { max_reservations: 0, circuit_data_limit_bytes: 1, circuit_duration_seconds: 1, monthly_bytes: 1 } }))
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--tiers-file', tiers], {}, /auth\.tiers\.gold\.max_reservations: must be >= 1/],
      [['--circuit-duration', '2147484'], {}, /limits\.circuit_duration_seconds: at most 2147483 seconds/],
      [[], { CIRCUIT_IDLE_TIMEOUT_SECONDS: '2147484' }, /limits\.circuit_idle_timeout_seconds: at most 2147483 seconds/]
    ]
    for (const [args, env, message] of cases) {
      // a relay that started anyway is stopped, not waited for
      const p = spawnCli(['run', '--config', good, '--host', '127.0.0.1', '--port', '0', '--metrics-host', '127.0.0.1', '--metrics-port', '0', ...args], { env })
      const deadline = setTimeout(() => { void p.kill('SIGKILL') }, 20_000)
      const code = await p.exited
      clearTimeout(deadline)
      assert.equal(code, 2, `${args.join(' ')}: ${p.stderr.join('\n')}`)
      assert.match(p.stderr.join('\n'), message)
    }
  })
})

describe('pos-relay run: QUIC', () => {
  const ready = async (args: string[], env: Record<string, string> = {}): Promise<string[]> => {
    const good = join(dir, `quic-${Math.random().toString(36).slice(2)}.json`)
    assert.equal((await runCli(['init', '--config', good], { input: 's\n' })).code, 0)
    const relay = spawnCli(['run', '--config', good, '--port', '0', '--host', '127.0.0.1', '--metrics-port', '0', '--metrics-host', '127.0.0.1', ...args], { env })
    try {
      return (await relay.waitForJson((o) => o.event === 'relay_ready')).addrs
    } finally {
      await relay.kill('SIGKILL')
    }
  }

  it('serves QUIC by default; --no-quic and RELAY_QUIC=false turn it off, --quic wins over the environment', async () => {
    assert.ok((await ready([])).some((a) => /\/udp\/\d+\/quic-v1\//.test(a)))
    assert.ok((await ready(['--no-quic'])).every((a) => !a.includes('/udp/')))
    assert.ok((await ready([], { RELAY_QUIC: 'false' })).every((a) => !a.includes('/udp/')))
    assert.ok((await ready(['--quic'], { RELAY_QUIC: 'off' })).some((a) => a.includes('/quic-v1/')))
  })

  it('rejects a RELAY_QUIC that is not a boolean, a QUIC announce address with QUIC off, and a host name as --host', async () => {
    const good = join(dir, 'quic-bad.json')
    assert.equal((await runCli(['init', '--config', good], { input: 's\n' })).code, 0)
    const env = await runCli(['run', '--config', good], { env: { RELAY_QUIC: 'maybe' } })
    assert.equal(env.code, 2)
    assert.match(env.stderr, /RELAY_QUIC must be true or false.*"maybe"/)
    const announce = await runCli(['run', '--config', good, '--no-quic', '--announce', '/ip4/203.0.113.7/udp/7373/quic-v1'])
    assert.equal(announce.code, 2)
    assert.match(announce.stderr, /announce: \/ip4\/203\.0\.113\.7\/udp\/7373\/quic-v1 is a QUIC address but quic is off/)
    const host = await runCli(['run', '--config', good, '--host', 'localhost'])
    assert.equal(host.code, 2)
    assert.match(host.stderr, /host: must be an IPv4 or IPv6 address/)
  })
})

describe('pos-relay discovery', () => {
  it('requires the p2p secret', async () => {
    const res = await runCli(['discovery', '--port', '0'], { env: { P2P_SECRET: '' } })
    assert.notEqual(res.code, 0)
    assert.match(res.stderr, /P2P_SECRET/)
  })

  it('refuses a bad Redis URL at start-up, naming the flag and not echoing the value', async () => {
    for (const [args, env, message] of [
      [['--redis', 'notaurl'], {}, /--redis \(POS_RELAY_DISCOVERY_REDIS_URL\) is not a URL/],
      [[], { REDIS_URL: 'http://127.0.0.1:6379' }, /--redis \(POS_RELAY_DISCOVERY_REDIS_URL\) must use redis:\/\/ or rediss:\/\//],
      [['--redis', 'redis://:hunter2@/0'], {}, /--redis \(POS_RELAY_DISCOVERY_REDIS_URL\) is not a URL/],
      [['--redis', 'redis:///0'], {}, /--redis \(POS_RELAY_DISCOVERY_REDIS_URL\) has no host/],
      [['--redis', 'redis://127.0.0.1:6379/cache'], {}, /--redis \(POS_RELAY_DISCOVERY_REDIS_URL\) has a path that is not a database number/],
    ] as const) {
      const res = await runExpectingExit(['discovery', '--port', '0', ...args], { env: { P2P_SECRET: 's', ...env } })
      assert.equal(res.code, 2, res.stderr)
      assert.match(res.stderr, message)
      assert.doesNotMatch(res.stdout, /discovery_ready/)
      assert.doesNotMatch(res.stderr, /hunter2/)
    }
  })

  it('refuses an unknown --log-level, from the flag or POS_RELAY_LOG_LEVEL', async () => {
    for (const [args, env] of [[['--log-level', 'loud'], {}], [[], { POS_RELAY_LOG_LEVEL: 'verbose' }]] as const) {
      const res = await runExpectingExit(['discovery', '--port', '0', ...args], { env: { P2P_SECRET: 's', ...env } })
      assert.notEqual(res.code, 0)
      assert.match(res.stderr, /--log-level must be one of fatal, error, warn, info, debug, trace, silent/)
    }
  })

  it('refuses missing or empty secret files, naming the flag', async () => {
    const empty = join(dir, 'empty-secret')
    await writeFile(empty, '\n')
    for (const [args, message] of [
      [['--p2p-secret-file', join(dir, 'no-such-secret')], /--p2p-secret-file .*no-such-secret does not exist/],
      [['--p2p-secret-file', empty], /--p2p-secret-file .*empty-secret is empty/],
      // an empty admin secret file used to mean "no accounts", silently
      [['--admin-secret-file', empty], /--admin-secret-file .*empty-secret is empty/],
    ] as const) {
      const res = await runExpectingExit(['discovery', '--port', '0', ...args], { env: { P2P_SECRET: 's' } })
      assert.equal(res.code, 2, res.stderr)
      assert.match(res.stderr, message)
    }
  })

  it('--public-addresses-only (or POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY) refuses private relay addrs; a non-boolean value is refused', async () => {
    const bad = await runExpectingExit(['discovery', '--port', '0'], { env: { P2P_SECRET: 's', POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY: 'maybe' } })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY must be true or false/)
    // the old name, still read
    for (const [args, env, publicOnly] of [[['--public-addresses-only'], {}, true], [[], { POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY: 'yes' }, true], [[], { PUBLIC_ADDRESSES_ONLY: 'false' }, false]] as const) {
      const { ready, status } = await registerUnsigned(args, env, '/ip4/10.0.0.7/tcp/7373')
      assert.equal(ready.public_addresses_only, publicOnly)
      assert.equal(status, publicOnly ? 400 : 200)
    }
  })
})

/** starts discovery with `args` and `env`, registers relay `r` at `addr` unsigned; the answer and the list after it */
async function registerUnsigned (args: readonly string[], env: Record<string, string>, addr: string): Promise<{ ready: any, status: number, message: string | undefined, listed: number }> {
  const p = spawnCli(['discovery', '--port', '0', '--host', '127.0.0.1', ...args], { env: { P2P_SECRET: 's', ...env } })
  try {
    const ready = await p.waitForJson((o) => o.event === 'discovery_ready')
    const res = await fetch(`${ready.url}/api/p2p/relays`, {
      method: 'POST',
      headers: { authorization: 'Bearer s', 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'r', peer_id: '12D3KooWGTT9QsbssEwn88dneQpv7Agw8MfFvS9jvdZ3V9GrqHNh', addrs: [addr] })
    })
    const message = res.ok ? undefined : ((await res.json()) as { message: string }).message
    const listed = ((await (await fetch(`${ready.url}/api/p2p/relays`)).json()) as unknown[]).length
    return { ready, status: res.status, message, listed }
  } finally {
    await p.kill()
  }
}

describe('discovery --require-signed', () => {
  it('--require-signed (or POS_RELAY_DISCOVERY_REQUIRE_SIGNED) refuses unsigned registrations with 403; a non-boolean value is refused', async () => {
    const bad = await runExpectingExit(['discovery', '--port', '0'], { env: { P2P_SECRET: 's', REQUIRE_SIGNED: 'sometimes' } })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /REQUIRE_SIGNED must be true or false/)
    for (const [args, env, required] of [[['--require-signed'], {}, true], [[], { POS_RELAY_DISCOVERY_REQUIRE_SIGNED: 'on' }, true], [[], { POS_RELAY_DISCOVERY_REQUIRE_SIGNED: '0' }, false]] as const) {
      const { ready, status, message, listed } = await registerUnsigned(args, env, '/ip4/203.0.113.7/tcp/7373')
      assert.equal(ready.require_signed, required)
      assert.equal(status, required ? 403 : 200)
      if (required) assert.match(message!, /requires signed registrations/)
      assert.equal(listed, required ? 0 : 1)
    }
  })
})

describe('boolean environment variables and Redis URLs of pos-relay run', () => {
  let config: string
  before(async () => {
    config = join(dir, 'bools.json')
    assert.equal((await runCli(['init', '--config', config], { input: 's\n' })).code, 0)
  })

  it('AUTH_ENABLED=false means off, AUTH_ENABLED=true on, anything else is refused', async () => {
    const off = spawnCli(['run', '--config', config, '--port', '0', '--metrics-port', '0', '--no-quic'], { env: { AUTH_ENABLED: 'false' } })
    try {
      await off.waitForJson((o) => o.event === 'relay_ready')
    } finally {
      await off.kill()
    }
    // on: auth then needs Redis, which this config does not name
    const on = await runExpectingExit(['run', '--config', config, '--port', '0', '--metrics-port', '0'], { env: { AUTH_ENABLED: 'true' } })
    assert.equal(on.code, 2)
    assert.match(on.stderr, /auth\.redis_url is required when auth is enabled/)
    const bad = await runExpectingExit(['run', '--config', config], { env: { AUTH_ENABLED: 'ture' } })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /AUTH_ENABLED must be true or false.*"ture"/)
  })

  it('refuses bad --redis and --auth-redis URLs naming the flag', async () => {
    const redis = await runExpectingExit(['run', '--config', config, '--redis', 'localhost:6379'])
    assert.equal(redis.code, 2)
    assert.match(redis.stderr, /--redis \(POS_RELAY_RATE_LIMIT_REDIS_URL\) must use redis:\/\//)
    const auth = await runExpectingExit(['run', '--config', config], { env: { AUTH_REDIS_URL: 'not a url' } })
    assert.equal(auth.code, 2)
    assert.match(auth.stderr, /--auth-redis \(POS_RELAY_AUTH_REDIS_URL\) is not a URL/)
  })
})

describe('pos-relay operator: relay securityContext flags', () => {
  it('refuses a value that is not a JSON object, by flag and by variable, naming the flag, before touching any cluster', async () => {
    for (const [value, what] of [['not json', /not JSON/], ['[1]', /got an array/], ['3', /got 3/]] as const) {
      const res = await runCli(['operator', '--relay-pod-security-context', value])
      assert.equal(res.code, 1, res.stderr)
      assert.match(res.stderr, /--relay-pod-security-context takes a JSON object \(a securityContext\)/)
      assert.match(res.stderr, what)
    }
    const env = await runCli(['operator'], { env: { POS_RELAY_OPERATOR_RELAY_CONTAINER_SECURITY_CONTEXT: 'null' } })
    assert.equal(env.code, 1, env.stderr)
    assert.match(env.stderr, /--relay-container-security-context takes a JSON object/)
  })
})

describe('admin client response bound', () => {
  it('refuses an admin answer over 1 MiB', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      for (let i = 0; i < 40; i++) res.write('x'.repeat(64 * 1024))
      res.end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const res = await runCli(['accounts', 'list', '--api-url', url], { env: { ADMIN_SECRET: 'admin' } })
      assert.notEqual(res.code, 0)
      assert.match(res.stderr, /exceeds 1048576 bytes/)
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })
})

describe('pos-relay usage dates', () => {
  it('refuses impossible dates instead of rolling them over', async () => {
    for (const bad of ['2030-02-30', '2030-13-01', '2029-02-29', '2030-04-31T00:00:00Z', '2030-01-01T24:00:00Z', '2030-01-01T10:00:00']) {
      const res = await runCli(['usage', '--from', bad], { env: { ADMIN_SECRET: 'admin' } })
      assert.notEqual(res.code, 0, bad)
      assert.match(res.stderr, new RegExp(`--from must be a real ISO 8601 date.*"${bad}"`))
    }
    // real dates pass the parser and get as far as the (absent) API
    for (const good of ['2028-02-29', '2030-01-31T23:59:59.5+02:00']) {
      const res = await runCli(['usage', '--to', good, '--api-url', 'http://127.0.0.1:1'], { env: { ADMIN_SECRET: 'admin' } })
      assert.match(res.stderr, /cannot reach the discovery API/, good)
    }
  })
})

describe('--help', () => {
  /**
   * Every command and subcommand of the program definition itself, so a flag
   * added to a command is checked without touching this test: each option
   * must have help text, and the command's --help must list its flag and its
   * environment variable.
   */
  const all: Array<{ path: string[], cmd: Command }> = []
  const walk = (cmd: Command, path: string[]): void => {
    for (const sub of cmd.commands) {
      all.push({ path: [...path, sub.name()], cmd: sub })
      walk(sub, [...path, sub.name()])
    }
  }
  walk(program(), [])
  /** environment variables read outside commander's option definitions (process.env in the command's code) */
  const envOutsideOptions: Record<string, string[]> = {
    init: ['POS_RELAY_P2P_SECRET'],
    run: ['POS_RELAY_QUIC', 'POS_RELAY_AUTH', 'POS_RELAY_REFRESH_ONLY', 'POS_RELAY_P2P_SECRET'],
    discovery: ['POS_RELAY_P2P_SECRET', 'POS_RELAY_ADMIN_SECRET', 'POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY', 'POS_RELAY_DISCOVERY_REQUIRE_SIGNED'],
    dev: ['POS_RELAY_QUIC'],
    operator: ['KUBECONFIG', 'POD_NAMESPACE', 'POD_NAME'],
    'accounts create': ['POS_RELAY_ADMIN_SECRET'],
    usage: ['POS_RELAY_ADMIN_SECRET']
  }

  /**
   * The long-running commands are configured through the environment in
   * containers: each of their flags has an environment variable, but these
   * (POS_RELAY_QUIC, POS_RELAY_AUTH, POS_RELAY_REFRESH_ONLY, POS_RELAY_DISCOVERY_PUBLIC_ADDRESSES_ONLY and …_REQUIRE_SIGNED are parsed by hand as strict
   * booleans, see run.ts and discovery.ts; KUBECONFIG is a list client-node reads, see operator.ts)
   */
  const envRequired = ['run', 'discovery', 'dev', 'operator']
  const withoutEnv: Record<string, string[]> = { run: ['--quic', '--no-quic', '--auth', '--refresh-only'], discovery: ['--public-addresses-only', '--require-signed'], dev: ['--no-accounts', '--quic', '--no-quic'], operator: ['--kubeconfig'] }

  it('finds the commands in the program definition', () => {
    const names = all.map((c) => c.path.join(' '))
    for (const name of ['run', 'init', 'discovery', 'dev', 'operator', 'keys generate', 'accounts create', 'usage']) assert.ok(names.includes(name), `no ${name} in ${names.join(', ')}`)
    assert.ok(all.find((c) => c.path.join(' ') === 'run')!.cmd.options.length >= 30)
  })

  for (const { path, cmd } of all) {
    it(`${path.join(' ')} --help lists every flag with its help text and environment variable`, async () => {
      const res = await runCli([...path, '--help'])
      assert.equal(res.code, 0, res.stderr)
      for (const opt of cmd.options) {
        const flag = opt.long ?? opt.short!
        assert.ok(opt.description.trim().length > 0, `${path.join(' ')} ${flag} has no help text`)
        assert.ok(new RegExp(`(^|[\\s,])${flag}\\b`, 'm').test(res.stdout), `${path.join(' ')} --help lacks ${flag}`)
        if (envRequired.includes(path.join(' ')) && !(withoutEnv[path.join(' ')] ?? []).includes(flag)) assert.ok(opt.envVar != null, `${path.join(' ')} ${flag} has no environment variable`)
        if (opt.envVar != null) assert.ok(res.stdout.includes(opt.envVar), `${path.join(' ')} --help lacks ${flag}'s environment variable ${opt.envVar}`)
      }
      for (const env of envOutsideOptions[path.join(' ')] ?? []) assert.ok(res.stdout.includes(env), `${path.join(' ')} --help lacks ${env}`)
    })
  }
  it('the top-level help lists the commands', async () => {
    const res = await runCli(['--help'])
    for (const word of ['run', 'init', 'discovery', 'dev']) assert.match(res.stdout, new RegExp(`\\b${word}\\b`))
  })
})
