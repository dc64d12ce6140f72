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
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createDiscoveryServer, createRedisStore } from '@pos-relay/discovery'
import { DiscoveryRegistration, RelayMetrics, sendsSecretInClear } from '@pos-relay/relay'
import { createLogger, signRegistration } from '@pos-relay/shared'
import { pollUntil, startRedis, waitFor } from '@pos-relay/testing'

function capture (): { logger: ReturnType<typeof createLogger>, lines: () => any[] } {
  const out: string[] = []
  const stream = new Writable({ write (chunk, _enc, cb) { out.push(String(chunk)); cb() } })
  return { logger: createLogger({ name: 'relay', level: 'debug', destination: stream }), lines: () => out.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)) }
}

describe('relay registration with discovery', () => {
  const servers: Server[] = []
  after(() => { for (const s of servers) s.close() })

  it('a 200 reply that never ends is refused at 64 KiB, not read forever', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      const chunk = Buffer.alloc(16 * 1024, 0x20)
      const timer = setInterval(() => { res.write(chunk) }, 1)
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
    const failed = await pollUntil('a registration_failed log line', () => lines().find((l) => l.event === 'registration_failed'), { timeoutMs: 15_000 }).finally(async () => { await reg.stop() })
    assert.match(failed.err, /exceeds 65536 bytes/)
  })

  it('refresh-only (pool relays): never lists itself, refreshes the entry the operator created, and stays out once delisted', async () => {
    const redis = await startRedis()
    const store = createRedisStore({ url: redis.url, keyPrefix: 'refresh-only:' })
    const app = await createDiscoveryServer({ store, p2pSecret: 's', logger: false, ttlSeconds: 3 })
    await app.listen({ host: '127.0.0.1', port: 0 })
    const key = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(key).toString()
    const entry = { id: 'pool-0', peer_id: peerId, addrs: [`/ip4/203.0.113.9/tcp/7373/p2p/${peerId}`] }
    const { logger, lines } = capture()
    const metrics = new RelayMetrics()
    const reg = new DiscoveryRegistration({
      apiUrl: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
      secret: 's',
      privateKey: key,
      refreshOnly: true,
      record: () => entry,
      logger,
      metrics,
      defaultTtlSeconds: 3
    })
    try {
      reg.start()
      await waitFor(() => lines().some((l) => l.event === 'not_listed'), { timeoutMs: 10_000, message: 'no not_listed' })
      await new Promise((resolve) => setTimeout(resolve, 1500)) // a second heartbeat, still absent
      assert.deepEqual(await store.list(), [])
      assert.equal(lines().filter((l) => l.event === 'not_listed').length, 1, 'not_listed is logged once per change')
      assert.equal(lines().filter((l) => l.event === 'registration_failed').length, 0, 'absent is not a failure')

      // the operator lists the relay (signed with the relay's key, as from its slot Secret)
      const t = Date.now()
      const created = await store.register(entry, 3000, await signRegistration(key, { op: 'register', ...entry, signed_at: t }))
      await waitFor(async () => (await store.get('pool-0'))?.updated_at !== created.updated_at, { timeoutMs: 10_000, message: 'the relay never refreshed its entry' })
      await reg.firstRegistration
      // its refreshes keep it listed past the TTL with nobody else writing
      await new Promise((resolve) => setTimeout(resolve, 4000))
      assert.equal((await store.list()).length, 1)

      // the operator delists it (pod not Ready): the relay's heartbeats do not bring it back
      const signedAt = Date.now() + 1
      assert.equal(await store.deregister('pool-0', { peer_id: peerId, addrs: [], ...(await signRegistration(key, { op: 'delete', id: 'pool-0', peer_id: peerId, addrs: [], signed_at: signedAt })) }), true)
      const before = (await metrics.registry.metrics()).match(/result="not_listed"} (\d+)/)?.[1]
      await waitFor(async () => (await metrics.registry.metrics()).match(/result="not_listed"} (\d+)/)?.[1] !== before, { timeoutMs: 10_000, message: 'no heartbeat after the delisting' })
      assert.deepEqual(await store.list(), [])
    } finally {
      await reg.stop()
      await app.close()
      await store.close()
      await redis.stop()
    }
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
