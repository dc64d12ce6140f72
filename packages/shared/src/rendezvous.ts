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

/** Per relay list (the discovery snapshot's array): utf8(peer_id) || 0x00 of each relay, built once. */
const prefixesOf = new WeakMap<readonly unknown[], Buffer[]>()

/**
 * The first `count` of rankRelays(relays, key), without sorting the whole list: one SHA-256 per
 * relay into a reused buffer (crypto.hash, no Hash object, no BigInt), the prefixes cached per
 * list array; the hot path of discovery's ?for=.
 */
export function topRelays<T extends { peer_id: string }> (relays: readonly T[], key: string, count: number): T[] {
  let prefixes = prefixesOf.get(relays)
  if (prefixes === undefined) {
    prefixes = relays.map((r) => Buffer.concat([Buffer.from(r.peer_id, 'utf8'), SEPARATOR]))
    prefixesOf.set(relays, prefixes)
  }
  const k = Buffer.from(key, 'utf8')
  const buf = Buffer.allocUnsafe(Math.max(0, ...prefixes.map((p) => p.length)) + k.length)
  const best: Array<{ i: number, hi: number, lo: number }> = []
  // a before b in rank order
  const before = (a: { i: number, hi: number, lo: number }, b: { i: number, hi: number, lo: number }): boolean =>
    a.hi !== b.hi ? a.hi > b.hi : a.lo !== b.lo ? a.lo > b.lo : Buffer.compare(prefixes[a.i]!, prefixes[b.i]!) <= 0
  for (let i = 0; i < relays.length && count > 0; i++) {
    const p = prefixes[i]!
    p.copy(buf, 0)
    k.copy(buf, p.length)
    const d = hash('sha256', buf.subarray(0, p.length + k.length), 'buffer') as unknown as Buffer
    const entry = { i, hi: d.readUInt32BE(0), lo: d.readUInt32BE(4) }
    if (best.length === count && !before(entry, best[count - 1]!)) continue
    let at = best.length
    while (at > 0 && !before(best[at - 1]!, entry)) at--
    best.splice(at, 0, entry)
    if (best.length > count) best.pop()
  }
  return best.map(({ i }) => relays[i]!)
}
