/**
 * npm run bench:etag-churn (issue 17): the share of relay-list polls with If-None-Match that get a
 * 304 while nothing a client uses changes, only heartbeats. Discovery's own relay-list cache
 * (createRelayListCache, 1 s max age) over its memory store, on a virtual clock (deterministic, no
 * waiting): R relays heartbeat every TTL/3 (staggered), C clients poll every P s (±10 % jitter)
 * sending the ETag of their last answer. No relay joins or leaves, no addr changes.
 *
 * Flags: --relays 1000 --clients 1000 --ttl 30 --poll 60 --minutes 10
 */
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createMemoryStore, createRelayListCache } from '@pos-relay/discovery'
import { seededRandom } from '@pos-relay/testing'

const { values } = parseArgs({ options: { relays: { type: 'string', default: '1000' }, clients: { type: 'string', default: '1000' }, ttl: { type: 'string', default: '30' }, poll: { type: 'string', default: '60' }, minutes: { type: 'string', default: '10' } } })
const R = Number(values.relays)
const C = Number(values.clients)
const TTL_MS = Number(values.ttl) * 1000
const POLL_MS = Number(values.poll) * 1000
const END_MS = Number(values.minutes) * 60_000
const HEARTBEAT_MS = TTL_MS / 3
const TICK_MS = 100

let t = 0
const now = (): number => t
const random = seededRandom(17)
const store = createMemoryStore({ now })
const cache = createRelayListCache({ store, now })

const relays = []
for (let i = 0; i < R; i++) {
  const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  relays.push({ reg: { id: `relay-${String(i).padStart(5, '0')}`, peer_id: peerId, addrs: [`/ip4/10.0.${(i >> 8) & 255}.${i & 255}/tcp/7373/p2p/${peerId}`] }, next: Math.floor(random() * HEARTBEAT_MS) })
  await store.register(relays[i]!.reg, TTL_MS)
}
const clients = Array.from({ length: C }, () => ({ next: Math.floor(random() * POLL_MS), etag: undefined as string | undefined }))

let polls = 0
let notModified = 0
const etags = new Set<string>()
for (; t < END_MS; t += TICK_MS) {
  for (const r of relays) {
    if (t < r.next) continue
    await store.register(r.reg, TTL_MS)
    r.next += HEARTBEAT_MS
  }
  for (const c of clients) {
    if (t < c.next) continue
    const snapshot = await cache.get()
    etags.add(snapshot.etag)
    if (c.etag !== undefined) {
      polls++
      if (c.etag === snapshot.etag) notModified++
    }
    c.etag = snapshot.etag
    c.next += POLL_MS * (0.9 + 0.2 * random())
  }
}
console.log(JSON.stringify({ relays: R, clients: C, ttl_s: TTL_MS / 1000, heartbeat_s: HEARTBEAT_MS / 1000, poll_s: POLL_MS / 1000, minutes: END_MS / 60_000, conditional_polls: polls, not_modified: notModified, rate_304: notModified / polls, distinct_etags: etags.size }))
