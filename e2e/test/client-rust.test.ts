/**
 * The Rust client (packages/client-rust) end to end: a real discovery API
 * issuing tickets (Redis-backed accounts) and a relay with --auth; the crate's
 * examples/file-transfer/ as listener and sender, which get tickets with the
 * account's API key, present them, reserve and dial through the relay; and
 * across languages with the JavaScript example (examples/file-transfer), in
 * both directions.
 *
 * Needs the example binary: `scripts/build-clients.sh rust-file-transfer`
 * (cold build ~6 min on 2 cores, then cached). Skips, saying so, when it is not built.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { scrapeMetric, waitFor } from '@pos-relay/testing'
import { startAccountsStack, type AccountsStack } from './helpers/accounts-stack.ts'
import { cachedExample, exampleFailureCases, exchangeAcrossLanguages, runExample, type Example, type ExampleSide } from './helpers/examples.ts'

const binary = cachedExample('rust-file-transfer')
// under POS_RELAY_REQUIRE_CLIENTS=1 (make test-clients, CI) a missing binary fails instead of skipping
if (binary == null && process.env.POS_RELAY_REQUIRE_CLIENTS === '1') throw new Error('POS_RELAY_REQUIRE_CLIENTS=1 but the Rust example is not built')
const skip = binary == null ? 'the Rust example is not built: run scripts/build-clients.sh rust-file-transfer (about 6 min cold)' : false
const example = (args: string[]): Example => runExample(binary!, args)

describe('Rust client: file transfer through a relay with accounts on', { timeout: 180_000, skip }, () => {
  let stack: AccountsStack
  const children: Example[] = []

  before(async () => {
    stack = await startAccountsStack({ account: 'rust-app', listedTimeoutMs: 15_000 })
  })

  after(async () => {
    for (const c of children) c.kill()
    await stack?.stop()
  })

  it('a Rust listener and a Rust sender with tickets exchange a 3 MiB file intact through the relay', async () => {
    const listener = example(['listen', '--discovery', stack.api, '--api-key', stack.apiKey, '--out', stack.dir])
    children.push(listener)
    await waitFor(() => listener.lines.some((l) => l.event === 'listening'), { timeoutMs: 30_000, message: `listener not up:\n${listener.stderr.join('\n')}` })
    const listening = listener.lines.find((l) => l.event === 'listening')
    assert.ok(listening.addrs.some((a: string) => a.includes('/p2p-circuit/')), 'the listener holds a circuit address')
    const file = join(stack.dir, 'photo.bin')
    const content = randomBytes(3 * 1024 * 1024)
    await writeFile(file, content)
    const sender = example(['send', '--discovery', stack.api, '--api-key', stack.apiKey, '--peer', listening.peer_id, '--file', file])
    children.push(sender)
    assert.equal(await sender.exited, 0, `sender failed:\n${sender.stderr.join('\n')}`)
    const sent = sender.lines.find((l) => l.event === 'sent')
    const sha256 = createHash('sha256').update(content).digest('hex')
    assert.deepEqual({ intact: sent.intact, bytes: sent.bytes, sha256: sent.sha256, relayed: sent.relayed }, { intact: true, bytes: content.length, sha256, relayed: true })
    await waitFor(() => listener.lines.some((l) => l.event === 'received'), { timeoutMs: 10_000 })
    const received = listener.lines.find((l) => l.event === 'received')
    assert.deepEqual({ file: received.file, bytes: received.bytes, sha256: received.sha256, relayed: received.relayed }, { file: 'photo.bin', bytes: content.length, sha256, relayed: true })
    assert.equal(createHash('sha256').update(await readFile(join(stack.dir, 'received-photo.bin'))).digest('hex'), sha256)
    // both presented tickets the relay accepted
    assert.ok(await scrapeMetric(stack.metricsPort, /^pos_relay_tickets_total\{result="ok"\} (\d+)/m) >= 2)
  })

  it('a Rust sender without an API key is refused by the relay and says so', async () => {
    const listening = children[0]?.lines.find((l) => l.event === 'listening')
    assert.ok(listening != null, 'needs the listener of the previous test')
    const file = join(stack.dir, 'small.bin')
    await writeFile(file, randomBytes(1024))
    const sender = example(['send', '--discovery', stack.api, '--peer', listening.peer_id, '--file', file])
    children.push(sender)
    assert.equal(await sender.exited, 1)
    assert.equal(sender.lines.find((l) => l.event === 'sent'), undefined)
    assert.ok(sender.stderr.some((l) => l.includes('dial_failed')), `no dial_failed:\n${sender.stderr.join('\n')}`)
  })

  const js = { name: 'js' }
  const native = { name: 'rust', bin: binary }
  for (const [listener, sender] of [[js, native], [native, js]] satisfies Array<[ExampleSide, ExampleSide]>) {
    const name = `${listener === js ? 'JavaScript' : 'Rust'} listener, ${sender === js ? 'JavaScript' : 'Rust'} sender`
    it(`${name}: the file arrives intact through the relay with tickets`, async () => {
      await exchangeAcrossLanguages({ listener, sender, api: stack.api, apiKey: stack.apiKey, dir: stack.dir, started: children })
    })
  }

  exampleFailureCases(() => ({ api: stack.api, apiKey: stack.apiKey, dir: stack.dir, started: children }), (args, opts) => runExample(binary!, args, opts))
})
