import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { byteStream, streamPair } from '@libp2p/utils'
import {
  compareRanked, exchangeTicket, fetchRelays, rankRelays, relayScore, relaysToDial, relaysToReserve, TicketProtocolError, DiscoveryError
} from '@pos-relay/client'
import { buildProtocolVectors, VECTORS_DIR } from '../../../scripts/protocol-vectors.ts'

interface RankingCase { name: string, key: string, relays: Array<{ id: string, peer_id: string }>, expected: string[], scores_hex: string[] }
interface RelayListCase { name: string, policy: 'default' | 'public-only', document: string, expected?: unknown[], error?: string }
interface TicketCase { name: string, token?: string, request_hex?: string, reply_hex: string, outcome: 'accepted' | 'rejected' | 'malformed', reason?: string | null }

async function load<T> (name: string): Promise<{ description: string, cases: T[] }> {
  return JSON.parse(await readFile(new URL(name, VECTORS_DIR), 'utf8'))
}

const ranking = await load<RankingCase>('ranking.json')
const relayLists = await load<RelayListCase>('relay-lists.json')
const tickets = await load<TicketCase>('tickets.json')
interface FailoverCase { name: string, listener: string, relay_count: number, relays: Array<{ id: string, peer_id: string }>, unusable: string[], reserve: string[], dial: string[] }
const failover = await load<FailoverCase>('failover.json')

it('the vector files are what scripts/protocol-vectors.ts writes (run `npm run protocol-vectors` after changing the SDK)', async () => {
  const built = await buildProtocolVectors()
  for (const [name, text] of Object.entries(built)) {
    assert.equal(await readFile(new URL(name, VECTORS_DIR), 'utf8'), text, `docs/protocol-vectors/${name} drifted`)
  }
})

describe('ranking vectors', () => {
  for (const c of ranking.cases) {
    it(c.name, () => {
      assert.deepEqual(rankRelays(c.relays, c.key).map((r) => r.id), c.expected)
      assert.deepEqual(c.relays.map((r) => relayScore(r.peer_id, c.key).toString(16).padStart(16, '0')), c.scores_hex)
    })
  }

  it('equal scores are ordered by the UTF-8 bytes of the peer ids, not by locale', () => {
    // 'B' (0x42) sorts before 'a' (0x61) by bytes; a locale-aware comparison puts 'a' first
    const sorted = [{ score: 7n, peerId: 'a' }, { score: 7n, peerId: 'B' }, { score: 9n, peerId: 'z' }, { score: 7n, peerId: 'Ä' }].sort(compareRanked)
    assert.deepEqual(sorted.map((s) => s.peerId), ['z', 'B', 'a', 'Ä'])
  })

  it('a dialer tries the first relayCount + 2 relays of the ranking', () => {
    const c = ranking.cases.find((x) => x.relays.length === 50)
    assert.ok(c != null)
    assert.deepEqual(relaysToDial(c.relays, c.key, 2).map((r) => r.id), c.expected.slice(0, 4))
    assert.deepEqual(relaysToDial(c.relays, c.key, 1).map((r) => r.id), c.expected.slice(0, 3))
  })
})

describe('failover vectors', () => {
  for (const c of failover.cases) {
    it(c.name, () => {
      const unusable = new Set(c.unusable.map((id) => c.relays.find((r) => r.id === id)?.peer_id ?? id))
      assert.deepEqual(relaysToReserve(c.relays, c.listener, c.relay_count, unusable).map((r) => r.id), c.reserve)
      assert.deepEqual(relaysToDial(c.relays, c.listener, c.relay_count).map((r) => r.id), c.dial)
    })
  }

  it('with up to two failed relays ahead of it, the listener stays within the relays its dialers try', () => {
    for (const c of failover.cases.filter((x) => x.unusable.length <= 2)) {
      for (const id of c.reserve) assert.ok(c.dial.includes(id), `${c.name}: ${id} is not among ${c.dial.join(', ')}`)
    }
  })
})

describe('relay list vectors, served by a real HTTP server and read by fetchRelays', () => {
  let server: Server
  let url: string
  const bodies = new Map<string, string>()
  before(async () => {
    server = createServer((req, res) => {
      const body = bodies.get(decodeURIComponent(req.url?.split('/')[1] ?? ''))
      if (body == null) return res.writeHead(404).end()
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(body)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  relayLists.cases.forEach((c, i) => {
    it(c.name, async () => {
      bodies.set(String(i), c.document)
      const read = fetchRelays(`${url}/${i}`, c.policy === 'public-only' ? { addressPolicy: { publicOnly: true } } : {})
      if (c.error != null) {
        await assert.rejects(read, (err: Error) => err instanceof DiscoveryError && err.code === c.error)
      } else {
        assert.deepEqual(await read, c.expected)
      }
    })
  })
})

/** Reads exactly one varint-framed message off a raw stream, returning its bytes with the prefix. */
async function readRawFrame (bytes: ReturnType<typeof byteStream>): Promise<Buffer> {
  let buf = Buffer.alloc(0)
  for (;;) {
    let length = 0
    let shift = 0
    let at = 0
    for (; at < buf.length; at++) {
      length += (buf[at]! & 0x7f) * 2 ** shift
      shift += 7
      if ((buf[at]! & 0x80) === 0) break
    }
    if (at < buf.length && buf.length >= at + 1 + length) return buf.subarray(0, at + 1 + length)
    const chunk = await bytes.read()
    if (chunk == null) throw new Error('stream ended inside the request frame')
    buf = Buffer.concat([buf, chunk.subarray()])
  }
}

describe('ticket vectors, exchanged over a stream', () => {
  for (const c of tickets.cases) {
    it(c.name, async () => {
      const [client, relay] = await streamPair()
      const relaySide = (async () => {
        const bytes = byteStream(relay)
        const request = await readRawFrame(bytes)
        const raw = bytes.unwrap()
        const reply = Buffer.from(c.reply_hex, 'hex')
        if (reply.length > 0) raw.send(reply)
        await raw.close()
        return request
      })()
      const outcome = await exchangeTicket(client, c.token ?? 'any-token', AbortSignal.timeout(5000)).then(
        (r) => r.outcome === 'accepted' ? { outcome: 'accepted', reason: null } : { outcome: 'rejected', reason: r.reason },
        (err) => {
          assert.ok(err instanceof TicketProtocolError, `expected TicketProtocolError, got ${err}`)
          return { outcome: 'malformed', reason: null }
        })
      const request = await relaySide
      await client.close().catch(() => {})
      if (c.request_hex != null) assert.equal(request.toString('hex'), c.request_hex)
      assert.deepEqual(outcome, { outcome: c.outcome, reason: c.outcome === 'malformed' ? null : c.reason ?? null })
    })
  }
})
