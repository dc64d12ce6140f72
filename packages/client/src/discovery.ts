import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Component } from '@multiformats/multiaddr'
import { dialableRelayAddrs, readTextCapped, ResponseTooLargeError, type AddressPolicy } from '@pos-relay/shared'

/** One entry of `GET /api/p2p/relays`. */
export interface RelayInfo {
  id: string
  peer_id: string
  addrs: string[]
}

/**
 * Why a relay list could not be had: `unreachable` (network, timeout, abort), `http_status`
 * (not 2xx), `too_large` (body over maxBytes), `invalid_document` (not JSON, or not a JSON array).
 */
export type DiscoveryErrorCode = 'unreachable' | 'http_status' | 'too_large' | 'invalid_document'

export class DiscoveryError extends Error {
  override name = 'DiscoveryError'
  constructor (readonly code: DiscoveryErrorCode, message: string, readonly status?: number) {
    super(message)
  }
}

export interface FetchRelaysOptions {
  signal?: AbortSignal
  timeoutMs?: number
  /** which addrs may be dialed (the discovery API's policy, shared); default: loopback and private ranges allowed */
  addressPolicy?: AddressPolicy
  /** largest body read; default 1 MiB */
  maxBytes?: number
  /**
   * Ask for the relays ranked for this peer id only (`?for=<peer id>&count=<count>`, server-side
   * rendezvous): a few entries instead of the whole list. An older discovery ignores the
   * parameters and answers the whole list; callers rank what they get either way (the ranking of
   * any subset keeps the global order), so the same code works against both.
   */
  for?: string
  /** with `for`: how many relays (clamped to 1-16; discovery's default is 3) */
  count?: number
}

/** The most relays `?for=` answers (the discovery API's limit). */
export const RANKED_COUNT_MAX = 16

/** The `count` that covers the failover rule (section 4): relayCount + the two a dialer tries beyond them. */
export function rankedCount (relayCount: number): number {
  return Math.min(RANKED_COUNT_MAX, Math.max(1, relayCount + EXTRA_DIAL_RELAYS))
}

/** A peer id in the one spelling discovery writes (base58btc); CID and other spellings are refused. */
function isCanonicalPeerId (value: string): boolean {
  try {
    return peerIdFromString(value).toString() === value
  } catch {
    return false
  }
}

/**
 * An addr of a relay entry must end in the text /p2p/<the entry's peer id>, name no other
 * peer, not be a circuit address, and have a host and a transport (or be /dnsaddr): the shape
 * discovery writes (packages/discovery's normaliseAddr). The host and transport are then judged by
 * the shared address policy.
 */
function belongsToEntry (addr: string, peerId: string): boolean {
  // as text: no /ipfs/ or CID spelling of the peer, which multiaddr libraries read differently
  if (!addr.endsWith(`/p2p/${peerId}`)) return false
  let components: Component[]
  try {
    components = multiaddr(addr).getComponents()
  } catch {
    return false
  }
  const last = components.at(-1)
  if (last?.name !== 'p2p' || last.value !== peerId) return false
  const transport = components.slice(0, -1)
  if (transport.some((c) => c.name === 'p2p' || c.name === 'p2p-circuit')) return false
  return transport.length >= 2 || (transport.length === 1 && transport[0]?.name === 'dnsaddr')
}

function usableAddrs (peerId: string, addrs: unknown[], policy: AddressPolicy | undefined): string[] {
  const own = addrs.filter((a): a is string => typeof a === 'string' && belongsToEntry(a, peerId))
  // the same filter discovery applies on registration: a hostile or stale list must not make us dial metadata endpoints
  return dialableRelayAddrs(own, policy)
}

/**
 * Reads a relay list document (the body of `GET /api/p2p/relays`). A body that is not a JSON array
 * throws DiscoveryError `invalid_document`. Entries that are malformed (not an object; id not a
 * non-empty string; peer_id not a base58btc peer id; addrs not an array) or left with no usable addr
 * are skipped rather than failing the whole list: one broken relay must not cut a client off from
 * the others. An entry whose id or peer_id was already taken by an earlier kept entry is skipped,
 * so each relay is ranked (and reserved on) once.
 */
export function parseRelayList (text: string, policy?: AddressPolicy): RelayInfo[] {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new DiscoveryError('invalid_document', 'relay list is not JSON')
  }
  if (!Array.isArray(body)) throw new DiscoveryError('invalid_document', 'relay list is not a JSON array')
  const ids = new Set<string>()
  const peers = new Set<string>()
  const relays: RelayInfo[] = []
  for (const entry of body as unknown[]) {
    if (entry == null || typeof entry !== 'object' || Array.isArray(entry)) continue
    const { id, peer_id: peerId, addrs } = entry as Record<string, unknown>
    if (typeof id !== 'string' || id.length === 0 || typeof peerId !== 'string' || !Array.isArray(addrs)) continue
    if (ids.has(id) || peers.has(peerId) || !isCanonicalPeerId(peerId)) continue
    const usable = usableAddrs(peerId, addrs, policy)
    if (usable.length === 0) continue
    ids.add(id)
    peers.add(peerId)
    relays.push({ id, peer_id: peerId, addrs: usable })
  }
  return relays
}

/**
 * Fetches the live relays from a discovery API and reads them with parseRelayList (see there for
 * what is skipped). Throws DiscoveryError with a `code` when no list could be had.
 */
export async function fetchRelays (discoveryUrl: string, opts: FetchRelaysOptions = {}): Promise<RelayInfo[]> {
  const url = new URL('api/p2p/relays', discoveryUrl.endsWith('/') ? discoveryUrl : discoveryUrl + '/')
  if (opts.for != null) {
    url.searchParams.set('for', opts.for)
    if (opts.count != null) url.searchParams.set('count', String(Math.min(RANKED_COUNT_MAX, Math.max(1, Math.trunc(opts.count)))))
  }
  const signals = [AbortSignal.timeout(opts.timeoutMs ?? 10_000)]
  if (opts.signal != null) signals.push(opts.signal)
  let res: Response
  try {
    res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.any(signals) })
  } catch (err: any) {
    throw new DiscoveryError('unreachable', `cannot reach discovery API ${url}: ${err.message}`)
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {})
    throw new DiscoveryError('http_status', `discovery API ${url} answered ${res.status}`, res.status)
  }
  let text: string
  try {
    text = await readTextCapped(res, opts.maxBytes)
  } catch (err: any) {
    const code = err instanceof ResponseTooLargeError ? 'too_large' : 'unreachable'
    throw new DiscoveryError(code, `discovery API ${url}: ${err.message}`)
  }
  try {
    return parseRelayList(text, opts.addressPolicy)
  } catch (err: any) {
    throw new DiscoveryError('invalid_document', `discovery API ${url}: ${err.message}`)
  }
}

/** Relays a peer reserves on by default. */
export const DEFAULT_RELAY_COUNT = 2
/** A dialer tries the target's first relayCount relays, then this many more. */
export const EXTRA_DIAL_RELAYS = 2

/**
 * The rendezvous score of a relay for a key (a peer id string): the first 8 bytes, big-endian,
 * of sha256(utf8(relay peer id) || 0x00 || utf8(key)).
 */
export function relayScore (relayPeerId: string, key: string): bigint {
  return createHash('sha256').update(relayPeerId, 'utf8').update('\0').update(key, 'utf8').digest().readBigUInt64BE(0)
}

/**
 * Rank order: higher score first; equal scores by the relay peer id strings' UTF-8 bytes, ascending
 * (never locale-aware: every client, in every language and locale, must agree).
 */
export function compareRanked (a: { score: bigint, peerId: string }, b: { score: bigint, peerId: string }): number {
  if (a.score !== b.score) return a.score > b.score ? -1 : 1
  return Buffer.compare(Buffer.from(a.peerId, 'utf8'), Buffer.from(b.peerId, 'utf8'))
}

/**
 * Rendezvous (highest-random-weight) ranking of relays for a peer. A peer
 * reserves on the first N relays ranked for its own peer id; a dialer ranks
 * the same list for the peer it wants and so knows which relays to try,
 * without a lookup and without connecting to every relay (ENG-1672). When
 * a relay joins or leaves, only the peers whose top N included it move.
 * Entries with the same peer id keep their input order (the sort is stable).
 */
export function rankRelays<T extends { peer_id: string }> (relays: readonly T[], key: string): T[] {
  return relays
    .map((relay) => ({ relay, score: relayScore(relay.peer_id, key), peerId: relay.peer_id }))
    .sort(compareRanked)
    .map(({ relay }) => relay)
}

/** The relays a dialer tries for `target`, in order: its first relayCount, then EXTRA_DIAL_RELAYS more. */
export function relaysToDial<T extends { peer_id: string }> (relays: readonly T[], target: string, relayCount = DEFAULT_RELAY_COUNT): T[] {
  return rankRelays(relays, target).slice(0, relayCount + EXTRA_DIAL_RELAYS)
}

/**
 * The relays a listener holds reservations on (docs/protocol.md section 4, "When a relay fails"): the first
 * relayCount relays of its own ranking that are not `unusable` (failed and not yet retried successfully).
 * A failed relay's place goes at once to the next usable relay in the ranking, so dialers, which try
 * relayCount + 2 relays, still find the listener with up to two failed relays among its first ones.
 */
export function relaysToReserve<T extends { peer_id: string }> (relays: readonly T[], self: string, relayCount = DEFAULT_RELAY_COUNT, unusable: ReadonlySet<string> = new Set()): T[] {
  return rankRelays(relays, self).filter((r) => !unusable.has(r.peer_id)).slice(0, relayCount)
}
