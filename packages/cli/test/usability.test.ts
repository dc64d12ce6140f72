// The CLI's first-run behaviour (issue 15, item 7), each through the real executable in a child process:
// unknown commands, POS_RELAY_… environment names, KUBECONFIG lists, and QUIC without its native module.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import type { Option } from 'commander'
import { freePort, waitFor } from '@pos-relay/testing'
import { deprecatedEnvOf, program } from 'pos-relay'
import { runCli, spawnCli, type CliProcess } from '../../../e2e/test/helpers/cli.ts'
import { closest, editDistance } from '../src/suggest.ts'

const NO_QUIC_NATIVE = fileURLToPath(new URL('./fixtures/no-quic-native.mjs', import.meta.url))
/** as on a platform without QUIC's prebuilt native module */
const withoutQuicNative = { NODE_OPTIONS: `--import=${NO_QUIC_NATIVE}` }

let dir: string
before(async () => { dir = await mkdtemp(join(tmpdir(), 'pos-relay-usability-')) })
after(async () => { await rm(dir, { recursive: true, force: true }) })

const jsonLines = (text: string): any[] => text.split('\n').map((l) => { try { return JSON.parse(l) } catch { return undefined } }).filter((o) => o != null)

async function stopped<T> (p: CliProcess, fn: () => Promise<T>): Promise<T> {
  try { return await fn() } finally { await p.kill('SIGKILL') }
}

describe('unknown commands', () => {
  it('names the closest command instead of "too many arguments for \'run\'"', async () => {
    const r = await runCli(['discvoery'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /unknown command 'discvoery'\. Did you mean 'discovery'\?/)
    assert.doesNotMatch(r.stderr, /too many arguments/)
    const op = await runCli(['opertor', '--namespace', 'x'])
    assert.match(op.stderr, /unknown command 'opertor'\. Did you mean 'operator'\?/)
  })

  it('suggests nothing for a word far from every command, and still runs `run` by default', async () => {
    const r = await runCli(['xyzzy'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /unknown command 'xyzzy'\. Commands: run, init, discovery/)
    assert.doesNotMatch(r.stderr, /Did you mean/)
    const byDefault = await runCli(['--config', join(dir, 'missing.json')])
    assert.match(byDefault.stderr, /config file .*missing\.json does not exist/)
  })

  it('closest() counts a swap of two letters as one edit and refuses far words', () => {
    assert.equal(editDistance('discvoery', 'discovery'), 1)
    assert.equal(closest('dve', ['run', 'dev', 'discovery']), 'dev')
    assert.equal(closest('kyes', ['keys', 'init']), 'keys')
    assert.equal(closest('banana', ['run', 'dev', 'init']), undefined)
  })
})

describe('POS_RELAY_… environment variables', () => {
  it('one name, one meaning: REDIS_URL is read by each command under its own new name, with one JSON deprecation line', async () => {
    const discovery = await runCli(['discovery'], { env: { REDIS_URL: 'http://not-redis', POS_RELAY_P2P_SECRET: 's' } })
    assert.equal(discovery.code, 2)
    assert.match(discovery.stderr, /--redis \(POS_RELAY_DISCOVERY_REDIS_URL\)/)
    const warnings = jsonLines(discovery.stderr).filter((l) => l.event === 'deprecated_env')
    assert.deepEqual(warnings.map((w) => [w.deprecated, w.use, w.level, w.name]), [['REDIS_URL', 'POS_RELAY_DISCOVERY_REDIS_URL', 'warn', 'discovery']])
    assert.doesNotMatch(discovery.stderr, /not-redis/, 'the URL (it may hold a password) is not echoed')

    const config = join(dir, 'redis-run.json')
    assert.equal((await runCli(['init', '--config', config], { input: 's\n' })).code, 0)
    const run = await runCli(['run', '--config', config], { env: { REDIS_URL: 'http://not-redis' } })
    assert.equal(run.code, 2)
    assert.match(run.stderr, /--redis \(POS_RELAY_RATE_LIMIT_REDIS_URL\)/)
    assert.deepEqual(jsonLines(run.stderr).filter((l) => l.event === 'deprecated_env').map((w) => w.use), ['POS_RELAY_RATE_LIMIT_REDIS_URL'])
  })

  it('the new names configure the command without a warning; next to a new name an old one is ignored, with a warning', async () => {
    const port = await freePort()
    const ok = spawnCli(['discovery', '--host', '127.0.0.1'], { env: { POS_RELAY_DISCOVERY_PORT: String(port), POS_RELAY_P2P_SECRET: 's', POS_RELAY_DISCOVERY_TTL_SECONDS: '7' } })
    const ready = await stopped(ok, async () => await ok.waitForJson((o) => o.event === 'discovery_ready'))
    assert.equal(ready.url, `http://127.0.0.1:${port}`)
    assert.equal(ready.ttl_seconds, 7)
    assert.ok(!ok.stderr.some((l) => l.includes('deprecated')), ok.stderr.join('\n'))

    const both = spawnCli(['discovery', '--host', '127.0.0.1', '--port', '0'], { env: { POS_RELAY_DISCOVERY_TTL_SECONDS: '9', RELAY_TTL_SECONDS: '5', POS_RELAY_P2P_SECRET: 's', P2P_SECRET: 'old' } })
    const bothReady = await stopped(both, async () => await both.waitForJson((o) => o.event === 'discovery_ready'))
    assert.equal(bothReady.ttl_seconds, 9)
    const ignored = jsonLines(both.stderr.join('\n')).filter((l) => l.event === 'deprecated_env').map((l) => l.msg).sort()
    assert.deepEqual(ignored, ['P2P_SECRET is deprecated and ignored: POS_RELAY_P2P_SECRET is set', 'RELAY_TTL_SECONDS is deprecated and ignored: POS_RELAY_DISCOVERY_TTL_SECONDS is set'])
  })

  it('an old name still works, parsed and checked as the new one', async () => {
    const both = spawnCli(['discovery', '--host', '127.0.0.1', '--port', '0'], { env: { RELAY_TTL_SECONDS: '5', P2P_SECRET: 's' } })
    assert.equal((await stopped(both, async () => await both.waitForJson((o) => o.event === 'discovery_ready'))).ttl_seconds, 5)
    const bad = await runCli(['discovery'], { env: { RELAY_TTL_SECONDS: 'soon', P2P_SECRET: 's' } })
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /value 'soon' from env 'RELAY_TTL_SECONDS' is invalid\. --ttl must be a non-negative integer/)
  })

  it('commands that print for people warn in one plain line', async () => {
    const r = await runCli(['accounts', 'list', '--api-url', 'http://127.0.0.1:9'], { env: { ADMIN_SECRET: 'a' } })
    assert.notEqual(r.code, 0)
    assert.equal(r.stderr.split('\n').filter((l) => l.includes('deprecated')).join('\n'), 'pos-relay: warning: ADMIN_SECRET is deprecated: use POS_RELAY_ADMIN_SECRET (read from ADMIN_SECRET for now)')
  })

  it('the README documents every POS_RELAY_… variable the commands read, and the old name it replaces (or —)', async () => {
    const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8')
    const walk = (cmd: ReturnType<typeof program>): Option[] => [...cmd.options.filter((o) => o.envVar != null), ...cmd.commands.flatMap(walk)]
    const options = walk(program())
    assert.ok(options.length > 40)
    for (const opt of options) {
      const name = opt.envVar!
      assert.ok(name.startsWith('POS_RELAY_'), `${name} is not namespaced`)
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${name}\` |`))
      assert.ok(row != null, `README's table lacks ${name}`)
      const old = deprecatedEnvOf(opt)
      // variables added after the rename replace nothing: their row says so
      if (old == null) assert.ok(row.endsWith('| — |'), `${name} replaces no old name, and README's row does not say "—"`)
      else assert.ok(row.includes(`\`${old}\``), `README's row of ${name} does not name ${old}`)
    }
  })
})

describe('KUBECONFIG', () => {
  it('takes a list of files as kubectl does (a:b, merged), not one path', async () => {
    // a closed port: the operator starts (its informers retry) without a cluster answering
    const server = `https://127.0.0.1:${await freePort()}`
    const clusters = join(dir, 'clusters.yaml')
    const contexts = join(dir, 'contexts.yaml')
    await writeFile(clusters, `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: ${server}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\n`)
    await writeFile(contexts, 'apiVersion: v1\nkind: Config\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n')
    const op = spawnCli(['operator', '--leader-elect', 'false', '--metrics-port', '0', '--metrics-host', '127.0.0.1'], { env: { KUBECONFIG: `${contexts}:${clusters}`, KUBERNETES_SERVICE_HOST: '' } })
    const started = await stopped(op, async () => await op.waitForJson((o) => o.event === 'operator_started'))
    assert.ok(started.metrics_port > 0)
    assert.ok(!op.stderr.some((l) => l.includes('ENOENT')), op.stderr.join('\n'))
  })

  it('a list naming no cluster is refused clearly', async () => {
    const empty = join(dir, 'empty.yaml')
    await writeFile(empty, 'apiVersion: v1\nkind: Config\n')
    const r = await runCli(['operator', '--metrics-port', '0'], { env: { KUBECONFIG: `${empty}:${empty}`, KUBERNETES_SERVICE_HOST: '' } })
    assert.equal(r.code, 2)
    assert.match(r.stderr, /KUBECONFIG .* names no current context with a cluster/)
  })
})

describe('QUIC and its native module', () => {
  const devArgs = async (): Promise<string[]> => ['dev', '--port', String(await freePort()), '--relay-port', String(await freePort()), '--metrics-port', String(await freePort())]
  async function devAddresses (args: string[], env: Record<string, string> = {}): Promise<{ addrs: string[], stderr: string }> {
    const p = spawnCli([...await devArgs(), ...args], { env })
    return await stopped(p, async () => {
      await waitFor(() => p.stdout.some((l) => l.includes('relay address:')) || p.child.exitCode != null, { timeoutMs: 30_000, message: 'pos-relay dev did not start' })
      const line = p.stdout.find((l) => l.includes('relay address:'))
      assert.ok(line != null, p.stderr.join('\n'))
      return { addrs: line.split(/\s+/).filter((w) => w.startsWith('/')), stderr: p.stderr.join('\n') }
    })
  }

  it('dev serves QUIC by default, and TCP only with --no-quic', async () => {
    assert.ok((await devAddresses([])).addrs.some((a) => a.includes('/quic-v1')))
    const tcp = await devAddresses(['--no-quic'])
    assert.ok(tcp.addrs.length > 0 && tcp.addrs.every((a) => a.includes('/tcp/')), tcp.addrs.join(' '))
  })

  it('where the native module does not load, dev and run switch QUIC off with a warning and serve TCP', async () => {
    const dev = await devAddresses([], withoutQuicNative)
    assert.ok(dev.addrs.length > 0 && dev.addrs.every((a) => a.includes('/tcp/')), dev.addrs.join(' '))
    const warning = jsonLines(dev.stderr).find((l) => l.event === 'quic_unavailable')
    assert.ok(warning != null, dev.stderr)
    assert.match(warning.msg, /QUIC is off: its native module does not load on .*, so the relay serves TCP only/)

    const config = join(dir, 'no-native.json')
    assert.equal((await runCli(['init', '--config', config], { input: 's\n' })).code, 0)
    const relay = spawnCli(['run', '--config', config, '--port', '0', '--host', '127.0.0.1', '--metrics-port', '0', '--metrics-host', '127.0.0.1'], { env: withoutQuicNative })
    const ready = await stopped(relay, async () => await relay.waitForJson((o) => o.event === 'relay_ready'))
    assert.ok(ready.addrs.every((a: string) => a.includes('/tcp/')), ready.addrs.join(' '))
  })

  it('--quic (or POS_RELAY_QUIC=true) without the native module is an error naming the platform', async () => {
    const r = await runCli([...await devArgs(), '--quic'], { env: withoutQuicNative })
    assert.equal(r.code, 2)
    assert.match(r.stderr, /QUIC is on but its native module does not load on \w+-\w+/)
    const config = join(dir, 'no-native-forced.json')
    assert.equal((await runCli(['init', '--config', config], { input: 's\n' })).code, 0)
    const run = await runCli(['run', '--config', config, '--port', '0', '--metrics-port', '0'], { env: { ...withoutQuicNative, POS_RELAY_QUIC: 'true' } })
    assert.equal(run.code, 2)
    assert.match(run.stderr, /native module does not load/)
  })
})
