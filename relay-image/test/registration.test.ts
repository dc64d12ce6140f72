/**
 * The relay's registration client against hostile or misplaced discovery
 * endpoints: a reply that never ends is cut at its cap (never buffered whole),
 * and a p2p secret about to cross the network in clear text is warned about.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, it } from 'node:test'
import { Writable } from 'node:stream'
import { DiscoveryRegistration, RelayMetrics, sendsSecretInClear } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'

function capture (): { logger: ReturnType<typeof createLogger>, lines: () => any[] } {
  const out: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { out.push(String(chunk)); cb() } })
  return { logger: createLogger({ name: 'relay', level: 'debug', destination: stream }), lines: () => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)) }
}

describe('relay registration with discovery', () => {
  const servers: Server[] = []
  after(() => { for (const s of servers) s.close() })

  it('a 200 reply that never ends is refused at 64 KiB, not read forever', async () => {
    let streamed = 0
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      const chunk = Buffer.alloc(16 * 1024, 0x20)
      const timer = setInterval(() => { streamed += chunk.length; res.write(chunk) }, 1)
      res.on('close', () => clearInterval(timer))
    })
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { logger, lines } = capture()
    const reg = new DiscoveryRegistration({
      apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      secret: 's',
      record: () => ({ id: 'r1', peer_id: '12D3KooWAbc', addrs: [] }),
      logger,
      metrics: new RelayMetrics(),
      requestTimeoutMs: 20_000
    })
    reg.start()
    const deadline = Date.now() + 15_000
    let failed: any
    while (failed == null && Date.now() < deadline) {
      failed = lines().find((l) => l.event === 'registration_failed')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await reg.stop()
    assert.ok(failed != null, 'no registration_failed')
    assert.match(failed.err, /exceeds 65536 bytes/)
  })

  it('warns when api_url sends the p2p secret over plain http to a non-loopback host', () => {
    assert.equal(sendsSecretInClear('http://discovery.example.com'), true)
    assert.equal(sendsSecretInClear('http://203.0.113.7:8080/'), true)
    assert.equal(sendsSecretInClear('https://discovery.example.com'), false)
    assert.equal(sendsSecretInClear('http://127.0.0.1:8080'), false)
    assert.equal(sendsSecretInClear('http://localhost:8080'), false)
    assert.equal(sendsSecretInClear('http://[::1]:8080'), false)
    const { logger, lines } = capture()
    const reg = new DiscoveryRegistration({ apiUrl: 'http://203.0.113.7:8080', secret: 'top-secret', record: () => ({ id: 'r', peer_id: 'p', addrs: [] }), logger, metrics: new RelayMetrics() })
    const warning = lines().find((l) => l.event === 'secret_over_plain_http')
    assert.ok(warning != null, 'no warning')
    assert.equal(warning.discovery, 'http://203.0.113.7:8080')
    assert.doesNotMatch(JSON.stringify(lines()), /top-secret/)
    void reg.stop()
  })
})
