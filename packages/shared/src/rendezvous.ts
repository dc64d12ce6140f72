import { createHash } from 'node:crypto'

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

/** The first `count` of rankRelays(relays, key), without sorting the whole list (O(n·count)). */
export function topRelays<T extends { peer_id: string }> (relays: readonly T[], key: string, count: number): T[] {
  const best: Array<{ relay: T, s: bigint }> = []
  for (const relay of relays) {
    const s = rendezvousScore(relay.peer_id, key)
    let at = best.length
    while (at > 0) {
      const prev = best[at - 1]!
      if (prev.s > s || (prev.s === s && compareUtf8(prev.relay.peer_id, relay.peer_id) <= 0)) break
      at--
    }
    if (at < count) {
      best.splice(at, 0, { relay, s })
      if (best.length > count) best.pop()
    }
  }
  return best.map(({ relay }) => relay)
}
