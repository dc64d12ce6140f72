import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { dialableRelayAddrs, readTextCapped, type AddressPolicy } from '@pos-relay/shared'

/** One entry of `GET /api/p2p/relays`. */
export interface RelayInfo {
  id: string
  peer_id: string
  addrs: string[]
}

export class DiscoveryError extends Error {
  override name = 'DiscoveryError'
}

export interface FetchRelaysOptions {
  signal?: AbortSignal
  timeoutMs?: number
  /** which addrs may be dialed (the discovery API's policy, shared); default: loopback and private ranges allowed */
  addressPolicy?: AddressPolicy
  /** largest body read; default 1 MiB */
  maxBytes?: number
}

/** Keeps an entry's addrs that belong to its peer and pass the address policy. */
function usableAddrs (entry: { peer_id: string, addrs: unknown[] }, policy: AddressPolicy | undefined): string[] {
  const own = entry.addrs.filter((a: unknown): a is string => {
    if (typeof a !== 'string') return false
    try { return multiaddr(a).getComponents().some((c) => c.value === entry.peer_id) } catch { return false }
  })
  // the same filter discovery applies on registration: a hostile or stale list must not make us dial metadata endpoints
  return dialableRelayAddrs(own, policy)
}

/**
 * Fetches the live relays from a discovery API. Entries that do not parse
 * (bad peer id, no usable multiaddr) are dropped rather than failing the
 * whole list: one broken relay must not cut a client off from the others.
 * Addrs the address policy refuses (link-local, multicast, ...) are dropped.
 */
export async function fetchRelays (discoveryUrl: string, opts: FetchRelaysOptions = {}): Promise<RelayInfo[]> {
  const url = new URL('api/p2p/relays', discoveryUrl.endsWith('/') ? discoveryUrl : discoveryUrl + '/')
  const signals = [AbortSignal.timeout(opts.timeoutMs ?? 10_000)]
  if (opts.signal != null) signals.push(opts.signal)
  let res: Response
  try {
    res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.any(signals) })
  } catch (err: any) {
    throw new DiscoveryError(`cannot reach discovery API ${url}: ${err.message}`)
  }
  if (!res.ok) throw new DiscoveryError(`discovery API ${url} answered ${res.status}`)
  let text: string
  try {
    text = await readTextCapped(res, opts.maxBytes)
  } catch (err: any) {
    throw new DiscoveryError(`discovery API ${url}: ${err.message}`)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new DiscoveryError(`discovery API ${url} did not return JSON`)
  }
  if (!Array.isArray(body)) throw new DiscoveryError(`discovery API ${url} did not return an array`)
  return body.flatMap((entry): RelayInfo[] => {
    if (entry == null || typeof entry.id !== 'string' || typeof entry.peer_id !== 'string' || !Array.isArray(entry.addrs)) return []
    try { peerIdFromString(entry.peer_id) } catch { return [] }
    const addrs = usableAddrs(entry, opts.addressPolicy)
    return addrs.length > 0 ? [{ id: entry.id, peer_id: entry.peer_id, addrs }] : []
  })
}

function score (relayPeerId: string, key: string): bigint {
  return createHash('sha256').update(relayPeerId).update('\0').update(key).digest().readBigUInt64BE(0)
}

/**
 * Rendezvous (highest-random-weight) ranking of relays for a peer. A peer
 * reserves on the first N relays ranked for its own peer id; a dialer ranks
 * the same list for the peer it wants and so knows which relays to try,
 * without a lookup and without connecting to every relay (ENG-1672). When
 * a relay joins or leaves, only the peers whose top N included it move.
 */
export function rankRelays<T extends { peer_id: string }> (relays: readonly T[], key: string): T[] {
  return relays
    .map((relay) => ({ relay, s: score(relay.peer_id, key) }))
    .sort((a, b) => (a.s === b.s ? a.relay.peer_id.localeCompare(b.relay.peer_id) : a.s > b.s ? -1 : 1))
    .map(({ relay }) => relay)
}
