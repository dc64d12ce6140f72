/**
 * The Go client library end to end: a real discovery API with accounts and a
 * real relay with --auth (one real Redis), and the Go example
 * (packages/client-go/cmd/file-transfer) as listener and sender. The Go
 * peers get tickets with the account's API key, present them on
 * /pos-relay/ticket/1.0.0, reserve and dial through the relay; the file must
 * arrive intact. A Go sender without an API key is refused. Then across
 * languages, in both directions: with the JavaScript example and with the
 * Rust one (the rest of the js/rust/go matrix is in client-rust.test.ts and
 * example.test.ts).
 *
 * Needs the Go example built: POS_RELAY_GO_FILE_TRANSFER=<binary>, or the
 * build cache filled by scripts/build-clients.sh. Skips (saying so)
 * otherwise.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { scrapeMetric, waitFor } from '@pos-relay/testing'
import { startAccountsStack, type AccountsStack } from './helpers/accounts-stack.ts'
import { cachedExample, exampleFailureCases, exchangeAcrossLanguages, runExample, type Example, type ExampleSide } from './helpers/examples.ts'

/** The Go example binary, or why there is none. */
function goExample (): { bin?: string, why?: string } {
  const fromEnv = process.env.POS_RELAY_GO_FILE_TRANSFER
  if (fromEnv != null && fromEnv !== '') {
    return existsSync(fromEnv) ? { bin: fromEnv } : { why: `POS_RELAY_GO_FILE_TRANSFER=${fromEnv} does not exist` }
  }
  const bin = cachedExample('go-file-transfer')
  if (bin != null && existsSync(bin)) return { bin }
  return { why: 'the Go example is not built: run scripts/build-clients.sh go-file-transfer (or set POS_RELAY_GO_FILE_TRANSFER)' }
}

const example = goExample()

// under POS_RELAY_REQUIRE_CLIENTS=1 (make test-clients, CI) a missing binary fails instead of skipping
if (example.why != null && process.env.POS_RELAY_REQUIRE_CLIENTS === '1') throw new Error(`POS_RELAY_REQUIRE_CLIENTS=1 but ${example.why}`)

describe('Go client: tickets, reservation and a file through a relay with --auth', { timeout: 180_000, skip: example.why ?? false }, () => {
  const bin = example.bin!
  let stack: AccountsStack
  const examples: Example[] = []

  before(async () => {
    stack = await startAccountsStack({ account: 'go-app', listedTimeoutMs: 20_000 })
  })

  after(async () => {
    for (const e of examples) e.kill()
    await stack?.stop()
  })

  it('a Go listener and a Go sender with tickets exchange a 3 MiB file intact through the relay; without an API key the sender is refused', async () => {
    const out = join(stack.dir, 'out')
    await mkdir(out)
    const listener = runExample(bin, ['listen', '--discovery', stack.api, '--api-key', stack.apiKey, '--out', out])
    examples.push(listener)
    await waitFor(() => listener.lines.some((l) => l.event === 'listening'), { timeoutMs: 30_000, message: `Go listener not up:\n${listener.stderr.join('\n')}` })
    const listening = listener.lines.find((l) => l.event === 'listening')
    assert.ok(listening.addrs.length > 0 && listening.addrs.every((a: string) => a.includes('/p2p-circuit/p2p/' + String(listening.peer_id))), 'the listener reports its circuit addrs')

    const file = join(stack.dir, 'photo.bin')
    const content = randomBytes(3 * 1024 * 1024)
    await writeFile(file, content)

    // no API key: the relay wants a ticket before it opens a circuit
    const refused = runExample(bin, ['send', '--discovery', stack.api, '--peer', listening.peer_id, '--file', file, '--timeout', '20s'])
    examples.push(refused)
    assert.notEqual(await refused.exited, 0, 'a sender without a ticket got through')
    assert.equal(refused.lines.find((l) => l.event === 'sent'), undefined)
    assert.match(refused.stderr.join('\n'), /PERMISSION_DENIED/, 'refused for another reason than the missing ticket')

    const sender = runExample(bin, ['send', '--discovery', stack.api, '--api-key', stack.apiKey, '--peer', listening.peer_id, '--file', file])
    examples.push(sender)
    assert.equal(await sender.exited, 0, `Go sender failed:\n${sender.stderr.join('\n')}`)
    const sent = sender.lines.find((l) => l.event === 'sent')
    assert.equal(sent.intact, true)
    assert.equal(sent.relayed, true)
    assert.equal(sent.bytes, content.length)
    await waitFor(() => listener.lines.some((l) => l.event === 'received'), { timeoutMs: 10_000, message: 'listener printed no received line' })
    const received = listener.lines.find((l) => l.event === 'received')
    assert.equal(received.relayed, true)
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
    assert.equal(sha(await readFile(join(out, 'received-photo.bin'))), sha(content))
    // both Go peers presented an accepted ticket to the relay
    assert.ok(await scrapeMetric(stack.metricsPort, /^pos_relay_tickets_total\{result="ok"\} (\d+)/m) >= 2, 'the relay counted fewer than 2 accepted tickets')
  })

  const js = { name: 'js' }
  const native = { name: 'go', bin }
  for (const [listener, sender] of [[js, native], [native, js]] satisfies Array<[ExampleSide, ExampleSide]>) {
    const name = `${listener === js ? 'JavaScript' : 'Go'} listener, ${sender === js ? 'JavaScript' : 'Go'} sender`
    it(`${name}: the file arrives intact through the relay with tickets`, async () => {
      await exchangeAcrossLanguages({ listener, sender, api: stack.api, apiKey: stack.apiKey, dir: stack.dir, started: examples })
    })
  }

  // the rest of the cross-language matrix: the Rust example against the Go one
  const rustBin = cachedExample('rust-file-transfer')
  const rust = { name: 'rust', bin: rustBin }
  for (const [listener, sender] of [[rust, native], [native, rust]] satisfies Array<[ExampleSide, ExampleSide]>) {
    const skipRust = rustBin == null && process.env.POS_RELAY_REQUIRE_CLIENTS !== '1' ? 'the Rust example is not built: run scripts/build-clients.sh rust-file-transfer' : false
    it(`${listener === rust ? 'Rust' : 'Go'} listener, ${sender === rust ? 'Rust' : 'Go'} sender: the file arrives intact through the relay with tickets`, { skip: skipRust }, async () => {
      assert.ok(rustBin != null, 'POS_RELAY_REQUIRE_CLIENTS=1 but the Rust example is not built')
      await exchangeAcrossLanguages({ listener, sender, api: stack.api, apiKey: stack.apiKey, dir: stack.dir, started: examples })
    })
  }

  exampleFailureCases(() => ({ api: stack.api, apiKey: stack.apiKey, dir: stack.dir, started: examples }), (args, opts) => runExample(bin, args, opts))
})
