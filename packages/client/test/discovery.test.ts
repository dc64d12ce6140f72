import assert from 'node:assert/strict'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { DiscoveryError, fetchRelays, TicketClient } from '@pos-relay/client'

const PEER_A = '12D3KooWGTT9QsbssEwn88dneQpv7Agw8MfFvS9jvdZ3V9GrqHNh'
const PEER_B = '12D3KooWAVjAAKKvSEKMrYNrkBmfwTaWLMtKJ8UyaQrZPNH9udNS'

/**
 * A real HTTP server playing a hostile or broken discovery API: each test sets what it answers.
 * (Our own discovery refuses these entries on registration; the client must not trust that.)
 */
let answer: (res: ServerResponse) => void = (res) => res.end('[]')
let server: Server
let url: string
before(async () => {
  server = createServer((_req, res) => { answer(res) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

const json = (body: unknown) => (res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

describe('fetchRelays address policy', () => {
  const hostile = [
    { id: 'metadata', peer_id: PEER_A, addrs: [`/ip4/169.254.169.254/tcp/80/p2p/${PEER_A}`, `/ip6/::ffff:169.254.169.254/tcp/80/p2p/${PEER_A}`] },
    {
      id: 'mixed',
      peer_id: PEER_B,
      addrs: [
        `/ip4/0.0.0.0/tcp/7373/p2p/${PEER_B}`,
        `/ip6/::/tcp/7373/p2p/${PEER_B}`,
        `/ip6/fe80::1/tcp/7373/p2p/${PEER_B}`,
        `/ip4/224.0.0.1/tcp/7373/p2p/${PEER_B}`,
        `/ip6/ff02::1/tcp/7373/p2p/${PEER_B}`,
        `/ip4/255.255.255.255/tcp/7373/p2p/${PEER_B}`,
        `/ip4/203.0.113.7/udp/53/p2p/${PEER_B}`,
        `/ip4/127.0.0.1/tcp/7373/p2p/${PEER_B}`,
        `/ip4/203.0.113.7/udp/7373/quic-v1/p2p/${PEER_B}`,
        `/ip4/203.0.113.7/tcp/7373/p2p/${PEER_B}`,
      ],
    },
  ]

  it('drops unspecified, link-local, multicast, broadcast and non-QUIC UDP addrs, and entries left with none', async () => {
    answer = json(hostile)
    assert.deepEqual(await fetchRelays(url), [
      {
        id: 'mixed',
        peer_id: PEER_B,
        addrs: [`/ip4/127.0.0.1/tcp/7373/p2p/${PEER_B}`, `/ip4/203.0.113.7/udp/7373/quic-v1/p2p/${PEER_B}`, `/ip4/203.0.113.7/tcp/7373/p2p/${PEER_B}`],
      },
    ])
  })

  it('drops loopback and private addrs with a public-only policy', async () => {
    answer = json(hostile)
    const relays = await fetchRelays(url, { addressPolicy: { publicOnly: true } })
    assert.deepEqual(relays[0]?.addrs, [`/ip4/203.0.113.7/udp/7373/quic-v1/p2p/${PEER_B}`, `/ip4/203.0.113.7/tcp/7373/p2p/${PEER_B}`])
  })

  it('keeps at most 16 addrs of an entry', async () => {
    answer = json([{ id: 'many', peer_id: PEER_A, addrs: Array.from({ length: 40 }, (_, i) => `/ip4/203.0.113.7/tcp/${4000 + i}/p2p/${PEER_A}`) }])
    assert.equal((await fetchRelays(url))[0]?.addrs.length, 16)
  })
})

describe('response size bounds', () => {
  const big = 'x'.repeat(1024 * 1024 + 1)
  const withLength = (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(big.length) })
    res.end(big)
  }
  // no content-length: the cap must hold while streaming, not only on the header
  const chunked = (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    for (let i = 0; i < 40; i++) res.write('x'.repeat(64 * 1024))
    res.end()
  }

  for (const [name, send] of [['a declared length', withLength], ['a chunked body', chunked]] as const) {
    it(`fetchRelays refuses a relay list over 1 MiB (${name})`, async () => {
      answer = send
      await assert.rejects(fetchRelays(url), (err: Error) => {
        assert.ok(err instanceof DiscoveryError)
        assert.equal(err.code, 'too_large')
        assert.match(err.message, /exceeds 1048576 bytes/)
        return true
      })
    })

    it(`TicketClient refuses a ticket answer over 1 MiB (${name})`, async () => {
      answer = send
      const client = new TicketClient({ discoveryUrl: url, apiKey: 'pra_test', peerId: peerIdFromString(PEER_A) })
      await assert.rejects(client.current(), /exceeds 1048576 bytes/)
    })
  }

  it('a list just under the bound is read', async () => {
    const entry = { id: 'r', peer_id: PEER_A, addrs: [`/ip4/203.0.113.7/tcp/4001/p2p/${PEER_A}`] }
    const body = JSON.stringify([entry]).replace(/^\[/, '[' + ' '.repeat(1024 * 1024 - 200))
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(body)
    }
    assert.deepEqual(await fetchRelays(url), [entry])
  })
})

describe('DiscoveryError codes', () => {
  const rejectsWith = async (code: string, opts: { status?: number, target?: string } = {}) => {
    await assert.rejects(fetchRelays(opts.target ?? url), (err: Error) => {
      assert.ok(err instanceof DiscoveryError, String(err))
      assert.equal(err.code, code)
      assert.equal(err.status, opts.status)
      return true
    })
  }

  it('http_status with the status when discovery answers an error', async () => {
    answer = (res) => res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"Service Unavailable"}')
    await rejectsWith('http_status', { status: 503 })
  })

  it('invalid_document when the body is JSON but not an array, or not JSON', async () => {
    answer = json({ relays: [] })
    await rejectsWith('invalid_document')
    answer = (res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>502</html>')
    await rejectsWith('invalid_document')
  })

  it('unreachable when nothing listens', async () => {
    // a port that was free a moment ago: listen on it, close, then dial it
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as AddressInfo).port
    await new Promise((resolve) => probe.close(resolve))
    await rejectsWith('unreachable', { target: `http://127.0.0.1:${port}` })
  })

  it('unreachable when the request times out', async () => {
    answer = () => {} // never answers
    await assert.rejects(fetchRelays(url, { timeoutMs: 200 }), (err: Error) => err instanceof DiscoveryError && err.code === 'unreachable')
    server.closeAllConnections()
  })
})

describe('fetchRelays entries', () => {
  it('keeps the first entry per id and per peer id, and only addrs ending in the entry\'s own /p2p/', async () => {
    answer = json([
      { id: 'r1', peer_id: PEER_A, addrs: [`/ip4/203.0.113.7/tcp/1/p2p/${PEER_B}`, `/ip4/203.0.113.7/tcp/2/p2p/${PEER_A}`] },
      { id: 'r1', peer_id: PEER_B, addrs: [`/ip4/203.0.113.8/tcp/1/p2p/${PEER_B}`] },
      { id: 'r2', peer_id: PEER_A, addrs: [`/ip4/203.0.113.9/tcp/1/p2p/${PEER_A}`] },
      { id: 'r3', peer_id: PEER_B, addrs: [`/ip4/203.0.113.8/tcp/1/p2p/${PEER_A}/p2p-circuit/p2p/${PEER_B}`, `/ip4/203.0.113.8/tcp/1/p2p/${PEER_B}`] }
    ])
    assert.deepEqual(await fetchRelays(url), [
      { id: 'r1', peer_id: PEER_A, addrs: [`/ip4/203.0.113.7/tcp/2/p2p/${PEER_A}`] },
      { id: 'r3', peer_id: PEER_B, addrs: [`/ip4/203.0.113.8/tcp/1/p2p/${PEER_B}`] }
    ])
  })
})
