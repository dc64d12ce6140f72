/**
 * `pos-relay check` (what the chart's `helm test` runs) against a real
 * discovery and relay (`pos-relay dev`), and against a discovery that lies:
 * a hand-made relay list (the bad input) served next to the real relay.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { freePort, waitFor } from '@pos-relay/testing'
import { runCli, spawnCli, type CliProcess } from './helpers/cli.ts'

const HOP = '/libp2p/circuit/relay/0.2.0/hop'

/** a discovery stand-in that answers /readyz and serves `relays` as the relay list */
async function lyingDiscovery (relays: string): Promise<{ url: string, server: Server }> {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(req.url === '/readyz' ? '{"status":"ok"}' : relays)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return { url: `http://127.0.0.1:${port}`, server }
}

describe('pos-relay check', { timeout: 90_000 }, () => {
  let dev: CliProcess
  let url: string
  let relay: { id: string, peer_id: string, addrs: string[] }
  before(async () => {
    const [port, relayPort, metricsPort] = [await freePort(), await freePort(), await freePort()]
    dev = spawnCli(['dev', '--no-quic', '--port', String(port), '--relay-port', String(relayPort), '--metrics-port', String(metricsPort)])
    await waitFor(() => dev.stdout.some((l) => l.includes('relay address:')), { timeoutMs: 30_000, message: 'dev never printed its addresses' })
    url = `http://127.0.0.1:${port}`
    relay = (await (await fetch(`${url}/api/p2p/relays`)).json() as any[])[0]
  })
  after(async () => { await dev?.kill('SIGKILL') })

  it('passes against discovery and its relay: the relay proves its listed peer id and offers the hop protocol', async () => {
    const r = await runCli(['check', url])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^GET \/readyz: 200$/m)
    assert.match(r.stdout, /^GET \/api\/p2p\/relays: 200 \(1 relays listed\)$/m)
    assert.match(r.stdout, new RegExp(`relay ${relay.id} at /ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${relay.peer_id}: peer id verified, offers ${HOP}`))
  })

  it('--relays 0 checks discovery only', async () => {
    const r = await runCli(['check', url, '--relays', '0'])
    assert.equal(r.code, 0, r.stderr)
    assert.doesNotMatch(r.stdout, /peer id verified/)
  })

  it('fails, naming the URL, when nothing answers', async () => {
    const port = await freePort()
    const r = await runCli(['check', `http://127.0.0.1:${port}`, '--timeout', '3000'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, new RegExp(`pos-relay: GET http://127\\.0\\.0\\.1:${port}/readyz: .*ECONNREFUSED`))
  })

  const lies: Array<[string, () => string, RegExp]> = [
    ['a relay list that is not JSON', () => '<html>', /GET \/api\/p2p\/relays: not JSON/],
    ['a relay list that is not an array', () => '{"relays":[]}', /GET \/api\/p2p\/relays: not a JSON array/],
    ['no relay with --require-relays', () => '[]', /discovery lists no relay \(--require-relays\)/],
    ['a relay listed under another peer id than the one at its address', () => JSON.stringify([{ ...relay, peer_id: '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA' }]), /answered as 12D3KooW\w+, listed as 12D3KooWD3eck/],
    ['an address naming another peer than the one listening there', () => JSON.stringify([{ ...relay, addrs: relay.addrs.map((a) => a.replace(relay.peer_id, '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA')) }]), /relay .* at \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooWD3eck/],
    ['a relay with no dialable TCP address', () => JSON.stringify([{ ...relay, addrs: ['/ip4/0.0.0.0/tcp/1/p2p/' + relay.peer_id] }]), /no dialable TCP address/]
  ]
  for (const [name, body, error] of lies) {
    it(`fails on ${name}`, async () => {
      const fake = await lyingDiscovery(body())
      try {
        const r = await runCli(['check', fake.url, '--require-relays', '--timeout', '5000'])
        assert.equal(r.code, 1, r.stdout)
        assert.match(r.stderr, error)
      } finally {
        fake.server.close()
      }
    })
  }
})
