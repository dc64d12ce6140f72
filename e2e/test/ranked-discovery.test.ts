/**
 * The client SDK asks discovery for the relays ranked for a peer (`?for=<peer id>&count=N`,
 * docs/protocol.md section 1): a listener for its own peer id, a dialer for its target's, with
 * count = relayCount + 2 (the failover rule, section 4). Real Redis, `pos-relay discovery`, a
 * relay with --auth, SDK peers with tickets. A recording HTTP proxy in front of discovery shows
 * what the SDK asked; in "older discovery" mode it drops the query string, so discovery answers
 * the full list as a server without `?for=` would, and the same SDK code must still work (it
 * ranks whatever list it gets: the ranking of a subset keeps the global order). The Rust and Go
 * file-transfer examples go through the same proxy in both modes.
 */
import assert from 'node:assert/strict'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, afterEach, before, describe, it } from 'node:test'
import { createRelayPeer, rankedCount, type RelayPeer } from '@pos-relay/client'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { waitFor } from '@pos-relay/testing'
import { assertEchoes, serveEcho } from '../../packages/client/test/echo.ts'
import { startAccountsStack, type AccountsStack } from './helpers/accounts-stack.ts'
import { cachedExample, runExample, type Example } from './helpers/examples.ts'

interface Seen { url: string, entries: number }

const nonEmpty = (s: string | undefined): string | undefined => s != null && s !== '' ? s : undefined

/** An HTTP proxy to `target` recording each request's URL and the entries answered; `strip` drops the query. */
async function recordingProxy (target: string, strip: boolean): Promise<{ url: string, seen: Seen[], close: () => Promise<void> }> {
  const seen: Seen[] = []
  const upstream = new URL(target)
  const server: Server = createServer((req, res) => {
    const path = strip ? req.url!.split('?')[0]! : req.url!
    const headers = { ...req.headers, host: upstream.host, 'accept-encoding': 'identity' }
    const out = request({ host: upstream.hostname, port: upstream.port, method: req.method, path, headers }, (up) => {
      const chunks: Buffer[] = []
      up.on('data', (c: Buffer) => chunks.push(c))
      up.on('end', () => {
        const body = Buffer.concat(chunks)
        if (req.url!.startsWith('/api/p2p/relays')) {
          let entries = -1
          try { entries = (JSON.parse(body.toString()) as unknown[]).length } catch {}
          seen.push({ url: req.url!, entries })
        }
        res.writeHead(up.statusCode!, up.headers)
        res.end(body)
      })
    })
    out.on('error', () => { res.destroy() })
    req.pipe(out)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) }
  }
}

describe('client SDK: relays ranked by discovery (?for=)', { timeout: 120_000 }, () => {
  let stack: AccountsStack
  const peers: RelayPeer[] = []
  const proxies: Array<{ close: () => Promise<void> }> = []

  before(async () => { stack = await startAccountsStack({ account: 'ranked', listedTimeoutMs: 15_000 }) })
  afterEach(async () => {
    while (peers.length > 0) await peers.pop()!.stop()
    while (proxies.length > 0) await proxies.pop()!.close()
  })
  after(async () => { await stack?.stop() })

  for (const older of [false, true]) {
    it(older
      ? 'against an older discovery that ignores ?for= (full list), the same SDK reserves and dials'
      : 'a listener asks for its own peer id, a dialer for its target\'s, count = relayCount + 2; the dial goes through', async () => {
      const proxy = await recordingProxy(stack.api, older)
      proxies.push(proxy)
      const relayCount = 2
      const listener = await createRelayPeer({ discoveryUrl: proxy.url, apiKey: stack.apiKey, relayCount, listen: ['/ip4/127.0.0.1/tcp/0'] })
      peers.push(listener)
      await serveEcho(listener.node)
      const dialer = await createRelayPeer({ discoveryUrl: proxy.url, apiKey: stack.apiKey, relayCount, listen: ['/ip4/127.0.0.1/tcp/0'] })
      peers.push(dialer)
      const lookupsBefore = proxy.seen.length
      await assertEchoes(await dialer.relays.dial(listener.node.peerId))

      const count = String(rankedCount(relayCount))
      assert.equal(count, '4')
      const params = (s: Seen): URLSearchParams => new URL(s.url, 'http://x').searchParams
      const forPeer = (id: string): Seen[] => proxy.seen.filter((s) => params(s).get('for') === id)
      const own = forPeer(listener.node.peerId.toString())
      assert.ok(own.length >= 1, `the listener polled with for=<its own id>: ${JSON.stringify(proxy.seen)}`)
      assert.ok(own.every((s) => params(s).get('count') === count))
      const lookups = proxy.seen.slice(lookupsBefore).filter((s) => params(s).get('for') === listener.node.peerId.toString())
      assert.equal(lookups.length, 1, `the dial looked up the target's relays once: ${JSON.stringify(proxy.seen)}`)
      assert.equal(dialer.relays.dialLookups, 1)
      // every relay list request carried for= and count=
      assert.ok(proxy.seen.every((s) => params(s).has('for') && params(s).get('count') === count), JSON.stringify(proxy.seen))
      assert.ok(proxy.seen.every((s) => s.entries === 1), `discovery answered the one relay: ${JSON.stringify(proxy.seen)}`)
    })
  }

  // the Rust crate and the Go module, through their file-transfer examples (skipped when not built;
  // make test-clients builds them, and POS_RELAY_REQUIRE_CLIENTS=1 makes a missing one fail)
  const natives = { rust: cachedExample('rust-file-transfer'), go: nonEmpty(process.env.POS_RELAY_GO_FILE_TRANSFER) ?? cachedExample('go-file-transfer') }
  if (process.env.POS_RELAY_REQUIRE_CLIENTS === '1') {
    const missing = Object.entries(natives).filter(([, bin]) => bin == null).map(([lang]) => lang)
    if (missing.length > 0) throw new Error(`POS_RELAY_REQUIRE_CLIENTS=1 but not built: ${missing.join(', ')} (scripts/build-clients.sh)`)
  }
  for (const [lang, bin] of Object.entries(natives)) {
    for (const older of [false, true]) {
      it(`${lang}: listener polls for=<own id>, sender looks up for=<listener>, count 4${older ? '; against an older discovery (full list) too' : ''}`, { skip: bin == null ? `the ${lang} example is not built` : false }, async () => {
        const proxy = await recordingProxy(stack.api, older)
        proxies.push(proxy)
        const started: Example[] = []
        try {
          const listener = runExample(bin!, ['listen', '--discovery', proxy.url, '--api-key', stack.apiKey, '--out', stack.dir])
          started.push(listener)
          await waitFor(() => listener.lines.some((l) => l.event === 'listening'), { timeoutMs: 30_000, message: `listener not up:\n${listener.stderr.join('\n')}` })
          const peerId: string = listener.lines.find((l) => l.event === 'listening').peer_id
          const file = join(stack.dir, `${lang}-${String(older)}.bin`)
          await writeFile(file, randomBytes(10_000))
          const polls = proxy.seen.length
          const sender = runExample(bin!, ['send', '--discovery', proxy.url, '--api-key', stack.apiKey, '--peer', peerId, '--file', file])
          started.push(sender)
          assert.equal(await sender.exited, 0, `sender failed:\n${sender.stderr.join('\n')}`)
          assert.equal(sender.lines.find((l) => l.event === 'sent')?.intact, true)
          const params = (x: Seen): URLSearchParams => new URL(x.url, 'http://x').searchParams
          const forListener = proxy.seen.filter((x) => params(x).get('for') === peerId)
          assert.ok(forListener.slice(0, 1).every((x) => proxy.seen.indexOf(x) < polls), `the listener polled for its own id first: ${JSON.stringify(proxy.seen)}`)
          assert.ok(proxy.seen.slice(polls).some((x) => params(x).get('for') === peerId), `the sender looked up the listener's relays: ${JSON.stringify(proxy.seen)}`)
          assert.ok(proxy.seen.every((x) => params(x).has('for') && params(x).get('count') === '4'), JSON.stringify(proxy.seen))
        } finally {
          for (const e of started) e.kill()
        }
      })
    }
  }
})
