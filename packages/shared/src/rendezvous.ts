import { createHash, hash } from 'node:crypto'

/**
 * Rendezvous (highest-random-weight) ranking of relays for a key (a peer id): the one rule every
 * client and discovery share, so a peer and its dialers agree on where it lives
 * (docs/protocol-vectors/ranking.json):
 *   score = first 8 bytes, big-endian unsigned, of sha256(utf8(relay peer_id) || 0x00 || utf8(key));
 *   highest score first; equal scores ordered by the relay peer_id strings compared byte-wise (UTF-8).
 */
export function rendezvousScore (relayPeerId: string, key: string): bigint {
  const digest = createHash('sha256').update(relayPeerId, 'utf8').update(SEPARATOR).update(key, 'utf8').digest()
  return digest.readBigUInt64BE(0)
}

const SEPARATOR = Buffer.from([0])

/** UTF-8 byte order, never locale-aware (localeCompare differs between runtimes and locales). */
export function compareUtf8 (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/** A new array: `relays` ranked for `key`, best first. */
export function rankRelays<T extends { peer_id: string }> (relays: readonly T[], key: string): T[] {
  return relays
    .map((relay) => ({ relay, s: rendezvousScore(relay.peer_id, key) }))
    .sort((a, b) => (a.s === b.s ? compareUtf8(a.relay.peer_id, b.relay.peer_id) : a.s > b.s ? -1 : 1))
    .map(({ relay }) => relay)
}

/** Per relay list (the discovery snapshot's array): what topRelays needs, built once per list. */
interface RankIndex {
  /** utf8(peer_id) || 0x00 of each relay */
  prefixes: Buffer[]
  /** per key length in bytes: every relay's message (prefix || room for the key) in one buffer, and a view on each */
  slabs: Map<number, Slab>
}
interface Slab { slab: Buffer, keyAt: Int32Array, views: Buffer[] }
const indexes = new WeakMap<readonly unknown[], RankIndex>()
/** key lengths kept per list (base58btc peer ids come in a few: 46, 52, 53); the oldest is dropped beyond */
const MAX_SLABS = 4

function indexOf (relays: readonly { peer_id: string }[]): RankIndex {
  let index = indexes.get(relays)
  if (index === undefined) {
    index = { prefixes: relays.map((r) => Buffer.concat([Buffer.from(r.peer_id, 'utf8'), SEPARATOR])), slabs: new Map() }
    indexes.set(relays, index)
  }
  return index
}

function slabFor (index: RankIndex, keyLength: number): Slab {
  const cached = index.slabs.get(keyLength)
  if (cached !== undefined) return cached
  const { prefixes } = index
  let size = 0
  for (const p of prefixes) size += p.length + keyLength
  const slab = Buffer.alloc(size)
  const keyAt = new Int32Array(prefixes.length)
  const views: Buffer[] = []
  let at = 0
  for (let i = 0; i < prefixes.length; i++) {
    const p = prefixes[i]!
    p.copy(slab, at)
    keyAt[i] = at + p.length
    views.push(slab.subarray(at, at + p.length + keyLength))
    at += p.length + keyLength
  }
  if (index.slabs.size >= MAX_SLABS) index.slabs.delete(index.slabs.keys().next().value!)
  const made = { slab, keyAt, views }
  index.slabs.set(keyLength, made)
  return made
}

/** the first 4 bytes of a digest returned as a 'binary' (latin1) string (one char per byte), big-endian */
const word = (d: string, at: number): number =>
  ((d.charCodeAt(at) << 24) | (d.charCodeAt(at + 1) << 16) | (d.charCodeAt(at + 2) << 8) | d.charCodeAt(at + 3)) >>> 0

/**
 * The first `count` of rankRelays(relays, key), the hot path of discovery's ?for=: one one-shot
 * SHA-256 per relay (crypto.hash, no Hash object), over a per-list buffer that already holds each
 * relay's utf8(peer_id) || 0x00 (the key is written after it), the digest taken as a 'binary' (latin1)
 * string (a Buffer result costs an allocation: ~2.5x the hash), the score compared as two uint32
 * (no BigInt), and a partial selection of the best `count` instead of a sort.
 */
export function topRelays<T extends { peer_id: string }> (relays: readonly T[], key: string, count: number): T[] {
  const out: T[] = []
  for (const i of topRelayPositions(relays, key, count)) out.push(relays[i]!)
  return out
}

/** topRelays(relays, key, count) as positions in `relays`. */
export function topRelayPositions (relays: readonly { peer_id: string }[], key: string, count: number): Int32Array {
  const n = Math.min(Math.floor(count), relays.length)
  if (!(n > 0)) return new Int32Array(0)
  const index = indexOf(relays)
  const { prefixes } = index
  const k = Buffer.from(key, 'utf8')
  const { slab, keyAt, views } = slabFor(index, k.length)
  // the best n so far, best first: relay index and score (hi, lo)
  const bi = new Int32Array(n)
  const bh = new Float64Array(n)
  const bl = new Float64Array(n)
  let filled = 0
  for (let i = 0; i < relays.length; i++) {
    k.copy(slab, keyAt[i]!)
    const d = hash('sha256', views[i]!, 'binary')
    const hi = word(d, 0)
    if (filled === n && hi < bh[n - 1]!) continue
    const lo = word(d, 4)
    // position: after every entry ranked before or equal to this one (equal peer ids keep input order)
    let at = filled === n ? n - 1 : filled
    if (filled === n && !ranksBefore(hi, lo, i, bh[at]!, bl[at]!, bi[at]!, prefixes)) continue
    while (at > 0 && ranksBefore(hi, lo, i, bh[at - 1]!, bl[at - 1]!, bi[at - 1]!, prefixes)) {
      bi[at] = bi[at - 1]!
      bh[at] = bh[at - 1]!
      bl[at] = bl[at - 1]!
      at--
    }
    bi[at] = i
    bh[at] = hi
    bl[at] = lo
    if (filled < n) filled++
  }
  return bi
}

/** whether relay i (score hi, lo) ranks strictly before relay j: higher score, else smaller peer id bytes */
function ranksBefore (hi: number, lo: number, i: number, hj: number, lj: number, j: number, prefixes: Buffer[]): boolean {
  if (hi !== hj) return hi > hj
  if (lo !== lj) return lo > lj
  // utf8(a) || 0x00 orders like utf8(a); equal peer ids: the earlier (j, already placed) stays first
  return Buffer.compare(prefixes[i]!, prefixes[j]!) < 0
}
