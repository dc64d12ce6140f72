import { topRelayPositions, topRelays } from '@pos-relay/shared'
import type { RelayListSnapshot } from './relay-list-cache.js'

export interface RankedCacheOptions {
  /** answers kept (least recently used dropped beyond); 0 = no cache, every ?for= ranks */
  maxEntries: number
  /** each lookup, for the hit-rate metric (peer ids never become labels) */
  onLookup?: (hit: boolean) => void
}

/**
 * ?for= answers: the relays ranked first for a key (topRelays), remembered per list version for
 * peers that ask again (a listener polling with its own id, dialers of the same target).
 * The version is the snapshot's ETag, which covers each relay's id, peer_id and addrs in list
 * order (relayListEtag): an equal ETag means the same peer ids at the same positions, so the
 * ranking is the same. What is kept is the ranked positions, and the records are taken from the
 * current snapshot, so an answer is exactly what ranking that snapshot would give (heartbeat
 * timestamps included), whether it came from the cache or not. A new version empties the cache.
 */
export function createRankedCache<R extends { peer_id: string }> (opts: RankedCacheOptions): { get: (snapshot: Pick<RelayListSnapshot, 'etag'> & { relays: readonly R[] }, key: string, count: number) => R[], size: () => number } {
  let version: string | undefined
  // insertion order = recency (a hit moves its entry to the end); `${count} ${key}` -> positions
  const entries = new Map<string, Int32Array>()
  return {
    get (snapshot, key, count) {
      const { relays } = snapshot
      if (opts.maxEntries <= 0) return topRelays(relays, key, count)
      if (snapshot.etag !== version) {
        entries.clear()
        version = snapshot.etag
      }
      const id = `${count} ${key}`
      let positions = entries.get(id)
      opts.onLookup?.(positions !== undefined)
      if (positions !== undefined) {
        entries.delete(id)
      } else {
        positions = topRelayPositions(relays, key, count)
        if (entries.size >= opts.maxEntries) entries.delete(entries.keys().next().value!)
      }
      entries.set(id, positions)
      const out: R[] = []
      for (const p of positions) out.push(relays[p]!)
      return out
    },
    size: () => entries.size,
  }
}
