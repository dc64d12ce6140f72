import { createHash } from 'node:crypto'
import { promisify } from 'node:util'
import { brotliCompress, constants as zlib, gzip } from 'node:zlib'
import type { RelayRecord, RelayStore } from './types.js'

const brotli = promisify(brotliCompress)
const gz = promisify(gzip)

export type ListEncoding = 'br' | 'gzip' | 'identity'

/** One read of the registry, serialized once and shared by every request until it is replaced. */
export interface RelayListSnapshot {
  relays: readonly RelayRecord[]
  /** the JSON body, identity encoding */
  json: Buffer
  /** weak: one validator for every encoding of the same list */
  etag: string
  /** the body in `encoding`, compressed once per snapshot on first use */
  body: (encoding: ListEncoding) => Promise<Buffer>
}

export interface RelayListCacheOptions {
  store: Pick<RelayStore, 'list'>
  /** a snapshot this old (from the start of its read) is never served; default 1000; 0 = read on every request */
  maxAgeMs?: number
  now?: () => number
  /** called with each fresh list (metrics) */
  onRefresh?: (relays: readonly RelayRecord[]) => void
}

/**
 * The relay list as every GET serves it: read from the store at most once per maxAgeMs per
 * replica, whatever the request rate (one read in flight, shared by all waiting requests), so
 * Redis work does not grow with the number of clients. A request never gets a list whose read
 * started more than maxAgeMs before it arrived.
 */
export function createRelayListCache (opts: RelayListCacheOptions): { get: () => Promise<RelayListSnapshot> } {
  const maxAgeMs = opts.maxAgeMs ?? 1000
  const now = opts.now ?? Date.now
  let current: { at: number, snapshot: RelayListSnapshot } | undefined
  // the read in flight and when it started; every request waiting for a list shares it
  let pending: { at: number, promise: Promise<RelayListSnapshot> } | undefined

  const refresh = (): Promise<RelayListSnapshot> => {
    const at = now()
    const promise = opts.store.list().then((relays) => {
      const snapshot = makeSnapshot(relays, current?.snapshot)
      if (current === undefined || at >= current.at) current = { at, snapshot }
      opts.onRefresh?.(relays)
      return snapshot
    }).finally(() => { if (pending?.promise === promise) pending = undefined })
    pending = { at, promise }
    return promise
  }

  return {
    async get () {
      const t = now()
      if (current !== undefined && t - current.at < maxAgeMs) return current.snapshot
      // a read in flight is young enough if it started at most maxAgeMs before this request
      if (pending !== undefined && t - pending.at < maxAgeMs) return await pending.promise
      return await refresh()
    },
  }
}

/**
 * The list's weak ETag, over what clients use (docs/protocol.md section 1: id, peer_id, addrs, in
 * list order) and not over the heartbeat timestamps: with 1,000 relays heartbeating every 10 s
 * a hash of the whole document changed every second and no poll got a 304 (bench:etag-churn).
 * Weak, because two bodies with the same tag differ in those timestamps, which a client ignores.
 */
export function relayListEtag (relays: readonly Pick<RelayRecord, 'id' | 'peer_id' | 'addrs'>[]): string {
  const used = JSON.stringify(relays.map((r) => [r.id, r.peer_id, r.addrs]))
  return `W/"${createHash('sha256').update(used).digest('base64url').slice(0, 27)}"`
}

function makeSnapshot (relays: readonly RelayRecord[], previous: RelayListSnapshot | undefined): RelayListSnapshot {
  const json = Buffer.from(JSON.stringify(relays))
  // an unchanged list keeps its snapshot, and so its compressed bodies
  if (previous !== undefined && previous.json.equals(json)) return previous
  const etag = relayListEtag(relays)
  const encoded = new Map<ListEncoding, Promise<Buffer>>([['identity', Promise.resolve(json)]])
  return {
    relays,
    json,
    etag,
    body (encoding) {
      let body = encoded.get(encoding)
      if (body === undefined) {
        body = encoding === 'br'
          ? brotli(json, { params: { [zlib.BROTLI_PARAM_QUALITY]: 5, [zlib.BROTLI_PARAM_SIZE_HINT]: json.length } })
          : gz(json, { level: 6 })
        encoded.set(encoding, body)
      }
      return body
    },
  }
}

/** The encoding to answer with for an Accept-Encoding header: br, then gzip, then identity (q=0 refuses one). */
export function negotiateEncoding (header: string | undefined): ListEncoding {
  if (!header) return 'identity'
  const q = new Map<string, number>()
  for (const part of header.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';')
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    const value = qParam === undefined ? 1 : Number(qParam.slice(2))
    q.set(name.trim(), Number.isFinite(value) ? value : 0)
  }
  const accepts = (name: string) => (q.get(name) ?? q.get('*') ?? 0) > 0
  if (accepts('br')) return 'br'
  if (accepts('gzip')) return 'gzip'
  return 'identity'
}

/** Whether an If-None-Match header matches `etag` (weak comparison, as RFC 9110 asks for GET). */
export function etagMatches (header: string | undefined, etag: string): boolean {
  if (!header) return false
  if (header.trim() === '*') return true
  const bare = etag.replace(/^W\//, '')
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === bare)
}
