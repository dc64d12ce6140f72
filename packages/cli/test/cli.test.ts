import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { peerIdOfKeypair } from '@pos-relay/relay'
import { runCli, spawnCli } from '../../../e2e/test/helpers/cli.ts'
import { program } from 'pos-relay'
import type { Command } from 'commander'

let dir: string
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
    init: ['P2P_SECRET'],
    run: ['RELAY_QUIC'],
    discovery: ['P2P_SECRET', 'ADMIN_SECRET'],
    operator: ['POD_NAMESPACE', 'POD_NAME'],
    'accounts create': ['ADMIN_SECRET'],
    usage: ['ADMIN_SECRET']
  }

  /**
   * The long-running commands are configured through the environment in
   * containers: each of their flags has an environment variable, but these
   * (RELAY_QUIC is parsed by hand as a strict boolean, see run.ts)
   */
  const envRequired = ['run', 'discovery', 'dev', 'operator']
  const withoutEnv: Record<string, string[]> = { run: ['--quic', '--no-quic'], dev: ['--no-accounts'] }

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
