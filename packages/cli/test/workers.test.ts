/**
 * `pos-relay run --workers 2`: the primary starts two workers, reports the
 * relay's addresses once both listen, serves the whole relay's /metrics and
 * /readyz, and drains both on SIGTERM.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, it } from 'node:test'
import { runCli, spawnCli } from '../../../e2e/test/helpers/cli.ts'

let dir = ''
before(async () => { dir = await mkdtemp(join(tmpdir(), 'pos-relay-workers-cli-')) })
after(async () => { await rm(dir, { recursive: true, force: true }) })

it('run --workers 2: one relay (QUIC on worker 0), one /metrics and /readyz for both workers, SIGTERM drains and exits 0', async () => {
  const config = join(dir, 'config.json')
  assert.equal((await runCli(['init', '--config', config], { input: 's\n' })).code, 0)
  const relay = spawnCli(['run', '--config', config, '--port', '0', '--host', '127.0.0.1', '--metrics-port', '0', '--metrics-host', '127.0.0.1', '--drain-seconds', '1', '--workers', '2'])
  try {
    const ready = await relay.waitForJson((o) => o.event === 'relay_ready')
    assert.equal(ready.workers, 2)
    assert.ok(ready.addrs.some((a: string) => /\/tcp\/\d+\/p2p\//.test(a)), ready.addrs.join(' '))
    assert.ok(ready.addrs.some((a: string) => a.includes('/quic-v1/')), `worker 0 serves QUIC: ${ready.addrs.join(' ')}`)
    const base = `http://127.0.0.1:${ready.metrics_port}`
    assert.equal((await fetch(`${base}/readyz`)).status, 200)
    const text = await (await fetch(`${base}/metrics`)).text()
    assert.match(text, /pos_relay_connections_active 0\b/)
    assert.match(text, /pos_relay_draining 0\b/)
    await relay.kill('SIGTERM')
    assert.equal(await relay.exited, 0, relay.stderr.join('\n'))
  } finally {
    await relay.kill('SIGKILL')
  }
})
