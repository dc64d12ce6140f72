import { randomBytes } from 'node:crypto'
import type { UsageDelta, UsageRow } from './contract.js'
import { ACCOUNT_ID } from './api-keys.js'
import { failFastRedis } from './redis.js'
import type { MinimalLogger } from './types.js'

/**
 * Where flushed usage goes. `apply` must be idempotent per batch id: applying the same id twice
 * counts once (it resolves false the second time).
 */
export interface UsageSink {
  apply: (batchId: string, rows: UsageRow[]) => Promise<boolean>
  query: (opts: UsageQuery) => Promise<UsageRow[]>
  /** bytes (both directions) of `account` in the UTC calendar month of `at` (default now) */
  monthlyBytes: (account: string, at?: Date) => Promise<number>
  close: () => Promise<void>
}

export interface UsageQuery {
  account?: string
  /** hour buckets whose start is in [floor-to-hour(from), to) */
  from: Date
  to: Date
}

/** Longest range one query may cover. */
export const MAX_QUERY_HOURS = 400 * 24
/** How long a flush marker is kept: a batch retried later than this would count twice. */
export const FLUSH_MARKER_TTL_SECONDS = 2 * 24 * 60 * 60
/** Monthly quota counters expire after this (well after their month ended). */
export const QUOTA_COUNTER_TTL_SECONDS = 100 * 24 * 60 * 60

/** Internal integer form: seconds are kept as whole milliseconds so sums stay exact. */
interface Bucket {
  account: string
  /** YYYY-MM-DDTHH (UTC) */
  hour: string
  bto: number
  bts: number
  circuits: number
  circuitMs: number
  reservationMs: number
}

const FIELDS = ['bytes_to_destination', 'bytes_to_source', 'circuits', 'circuit_ms', 'reservation_ms'] as const

export function hourKey (at: Date): string {
  return at.toISOString().slice(0, 13)
}
export function monthKey (at: Date): string {
  return at.toISOString().slice(0, 7)
}
const hourIso = (key: string) => `${key}:00:00.000Z`

function emptyBucket (account: string, hour: string): Bucket {
  return { account, hour, bto: 0, bts: 0, circuits: 0, circuitMs: 0, reservationMs: 0 }
}
function addInto (target: Bucket, b: Bucket): void {
  target.bto += b.bto
  target.bts += b.bts
  target.circuits += b.circuits
  target.circuitMs += b.circuitMs
  target.reservationMs += b.reservationMs
}
const isZero = (b: Bucket) => b.bto === 0 && b.bts === 0 && b.circuits === 0 && b.circuitMs === 0 && b.reservationMs === 0

function toRow (b: Bucket): UsageRow {
  return {
    account: b.account,
    hour: hourIso(b.hour),
    bytes_to_destination: b.bto,
    bytes_to_source: b.bts,
    circuits: b.circuits,
    circuit_seconds: b.circuitMs / 1000,
    reservation_seconds: b.reservationMs / 1000,
  }
}

const nonNegInt = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const nonNegFinite = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0

function fromRow (r: UsageRow): Bucket {
  if (typeof r?.account !== 'string' || !ACCOUNT_ID.test(r.account)) throw new TypeError('usage row: bad account')
  const at = new Date(r.hour)
  if (Number.isNaN(at.getTime())) throw new TypeError('usage row: bad hour')
  for (const f of ['bytes_to_destination', 'bytes_to_source', 'circuits'] as const) if (!nonNegInt(r[f])) throw new TypeError(`usage row: ${f} must be a non-negative integer`)
  for (const f of ['circuit_seconds', 'reservation_seconds'] as const) if (!nonNegFinite(r[f])) throw new TypeError(`usage row: ${f} must be a non-negative number`)
  return {
    account: r.account,
    hour: hourKey(at),
    bto: r.bytes_to_destination,
    bts: r.bytes_to_source,
    circuits: r.circuits,
    circuitMs: Math.round(r.circuit_seconds * 1000),
    reservationMs: Math.round(r.reservation_seconds * 1000),
  }
}

function checkQuery (q: UsageQuery): string[] {
  if (!(q?.from instanceof Date) || Number.isNaN(q.from.getTime()) || !(q.to instanceof Date) || Number.isNaN(q.to.getTime())) {
    throw new RangeError('usage query: from and to must be valid dates')
  }
  if (q.account !== undefined && (typeof q.account !== 'string' || !ACCOUNT_ID.test(q.account))) throw new RangeError('usage query: bad account id')
  if (q.to.getTime() <= q.from.getTime()) throw new RangeError('usage query: to must be after from')
  const start = Math.floor(q.from.getTime() / 3_600_000) * 3_600_000
  const hours = Math.ceil((q.to.getTime() - start) / 3_600_000)
  if (hours > MAX_QUERY_HOURS) throw new RangeError(`usage query: at most ${MAX_QUERY_HOURS / 24} days at once`)
  return Array.from({ length: hours }, (_, i) => hourKey(new Date(start + i * 3_600_000)))
}

const byHourThenAccount = (a: UsageRow, b: UsageRow) => (a.hour < b.hour ? -1 : a.hour > b.hour ? 1 : a.account < b.account ? -1 : a.account > b.account ? 1 : 0)

/** In-process sink for dev and tests (idempotent like the Redis one). */
export function createMemoryUsageSink (): UsageSink & { appliedBatches: () => number } {
  const applied = new Set<string>()
  const buckets = new Map<string, Bucket>()
  const months = new Map<string, number>()
  return {
    async apply (batchId, rows) {
      if (typeof batchId !== 'string' || batchId.length === 0) throw new TypeError('batchId must be a non-empty string')
      const parsed = rows.map(fromRow)
      if (applied.has(batchId)) return false
      applied.add(batchId)
      for (const b of parsed) {
        const k = `${b.account}\n${b.hour}`
        const target = buckets.get(k) ?? emptyBucket(b.account, b.hour)
        addInto(target, b)
        buckets.set(k, target)
        const mk = `${b.account}\n${b.hour.slice(0, 7)}`
        months.set(mk, (months.get(mk) ?? 0) + b.bto + b.bts)
      }
      return true
    },
    async query (q) {
      const hours = new Set(checkQuery(q))
      return [...buckets.values()]
        .filter((b) => hours.has(b.hour) && (q.account === undefined || b.account === q.account) && !isZero(b))
        .map(toRow)
        .sort(byHourThenAccount)
    },
    async monthlyBytes (account, at = new Date()) {
      return months.get(`${account}\n${monthKey(at)}`) ?? 0
    },
    appliedBatches: () => applied.size,
    async close () {},
  }
}

export interface RedisUsageSinkOptions {
  redisUrl: string
  /** default 'pos-relay:' */
  keyPrefix?: string
  /** per-command timeout; default 2000 ms */
  commandTimeoutMs?: number
  logger?: MinimalLogger
}

// KEYS[1] flush marker; per row i (0-based): KEYS[2+3i] usage hash, KEYS[3+3i] hour index, KEYS[4+3i] quota counter
// ARGV[1] marker ttl, ARGV[2] quota ttl; per row: ARGV[3+7i..9+7i] = account, bto, bts, circuits, circuit_ms, reservation_ms, bto+bts
// Numbers stay strings (Lua doubles would round big integers); Redis does the integer arithmetic.
const APPLY = `if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local fields = {'bytes_to_destination', 'bytes_to_source', 'circuits', 'circuit_ms', 'reservation_ms'}
local n = (#KEYS - 1) / 3
for i = 0, n - 1 do
  local usage, hour, quota = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local a = 3 + 7 * i
  for f = 1, 5 do
    local v = ARGV[a + f]
    if v ~= '0' then redis.call('HINCRBY', usage, fields[f], v) end
  end
  redis.call('SADD', hour, ARGV[a])
  if ARGV[a + 6] ~= '0' then
    redis.call('INCRBY', quota, ARGV[a + 6])
    redis.call('EXPIRE', quota, ARGV[2])
  end
end
return 1`

interface Scripts {
  posRelayUsageApply(numKeys: number, ...args: string[]): Promise<number>
}

/**
 * Redis sink. Layout: `<prefix>usage:<account>:<YYYY-MM-DDTHH>` hash (bytes_to_destination,
 * bytes_to_source, circuits, circuit_ms, reservation_ms), `<prefix>usage-hour:<YYYY-MM-DDTHH>` set of
 * accounts with usage in that hour, `<prefix>quota:<account>:<YYYY-MM>` monthly bytes, and
 * `<prefix>flush:<batch id>` markers (EX 2 days). A batch is applied by ONE Lua script guarded by
 * `SET flush:<id> NX`, so it is atomic and a retried batch never counts twice.
 */
export function createRedisUsageSink (opts: RedisUsageSinkOptions): UsageSink {
  const prefix = opts.keyPrefix ?? 'pos-relay:'
  const usageKey = (account: string, hour: string) => `${prefix}usage:${account}:${hour}`
  const hourIndexKey = (hour: string) => `${prefix}usage-hour:${hour}`
  const quotaKey = (account: string, month: string) => `${prefix}quota:${account}:${month}`
  const conn = failFastRedis({ redisUrl: opts.redisUrl, commandTimeoutMs: opts.commandTimeoutMs ?? 2000, logger: opts.logger, name: 'usage-sink' })
  conn.redis.defineCommand('posRelayUsageApply', { lua: APPLY })
  const scripts = conn.redis as unknown as Scripts

  const readBuckets = async (pairs: [string, string][]): Promise<UsageRow[]> => {
    if (pairs.length === 0) return []
    const res = await conn.run(async (r) => {
      const p = r.pipeline()
      for (const [account, hour] of pairs) p.hgetall(usageKey(account, hour))
      const out = await p.exec()
      if (!out) throw new Error('pipeline aborted')
      for (const [err] of out) if (err) throw err
      return out.map(([, v]) => v as Record<string, string>)
    })
    const rows: UsageRow[] = []
    res.forEach((h, i) => {
      const [account, hour] = pairs[i] as [string, string]
      const b = emptyBucket(account, hour)
      b.bto = Number(h[FIELDS[0]] ?? 0)
      b.bts = Number(h[FIELDS[1]] ?? 0)
      b.circuits = Number(h[FIELDS[2]] ?? 0)
      b.circuitMs = Number(h[FIELDS[3]] ?? 0)
      b.reservationMs = Number(h[FIELDS[4]] ?? 0)
      if (!isZero(b)) rows.push(toRow(b))
    })
    return rows.sort(byHourThenAccount)
  }

  return {
    async apply (batchId, rows) {
      if (typeof batchId !== 'string' || batchId.length === 0) throw new TypeError('batchId must be a non-empty string')
      const buckets = rows.map(fromRow)
      const keys = [`${prefix}flush:${batchId}`]
      const args = [String(FLUSH_MARKER_TTL_SECONDS), String(QUOTA_COUNTER_TTL_SECONDS)]
      for (const b of buckets) {
        keys.push(usageKey(b.account, b.hour), hourIndexKey(b.hour), quotaKey(b.account, b.hour.slice(0, 7)))
        args.push(b.account, String(b.bto), String(b.bts), String(b.circuits), String(b.circuitMs), String(b.reservationMs), String(b.bto + b.bts))
      }
      return (await conn.run(() => scripts.posRelayUsageApply(keys.length, ...keys, ...args))) === 1
    },
    async query (q) {
      const hours = checkQuery(q)
      if (q.account !== undefined) return await readBuckets(hours.map((h) => [q.account as string, h]))
      const members = await conn.run(async (r) => {
        const p = r.pipeline()
        for (const h of hours) p.smembers(hourIndexKey(h))
        const out = await p.exec()
        if (!out) throw new Error('pipeline aborted')
        for (const [err] of out) if (err) throw err
        return out.map(([, v]) => v as string[])
      })
      return await readBuckets(hours.flatMap((h, i) => (members[i] ?? []).map((a): [string, string] => [a, h])))
    },
    async monthlyBytes (account, at = new Date()) {
      const v = await conn.run((r) => r.get(quotaKey(account, monthKey(at))))
      return v === null ? 0 : Number(v)
    },
    async close () {
      await conn.close()
    },
  }
}

export interface UsageMeterOptions {
  sink: UsageSink
  /** part of every batch id; unique per relay */
  relayId: string
  /** default 5000 */
  flushIntervalMs?: number
  /** when more batches wait, the never-attempted ones are merged into one; default 10000 */
  maxPendingBatches?: number
  /** rows per batch (one Lua script each); default 500 */
  maxRowsPerBatch?: number
  logger?: MinimalLogger
}

interface Batch {
  id: string
  buckets: Bucket[]
  /** handed to the sink at least once: it may have landed, so it keeps its id and content */
  attempted: boolean
}

export interface UsageMeterStats {
  flushed_batches: number
  duplicate_batches: number
  failed_flushes: number
  merged_batches: number
  pending_batches: number
}

/**
 * Aggregates usage in memory per account and UTC hour; every flush cuts the aggregate into batches
 * with unique ids (`<relayId>:<bootId>:<seq>`) and hands them to the sink in order. A batch that
 * fails stays pending (never dropped) and is retried with the SAME id, so the sink's idempotency
 * makes retries exact. A crash loses at most what was added since the last successful flush
 * (one flush interval while the sink is healthy, plus whatever was pending).
 */
export class UsageMeter {
  readonly bootId = randomBytes(6).toString('hex')
  readonly #sink: UsageSink
  readonly #relayId: string
  readonly #intervalMs: number
  readonly #maxPending: number
  readonly #maxRows: number
  readonly #log: MinimalLogger | undefined
  #current = new Map<string, Bucket>()
  #pending: Batch[] = []
  #seq = 0
  #timer: NodeJS.Timeout | undefined
  #chain: Promise<void> = Promise.resolve()
  #failing = false
  readonly #stats = { flushed_batches: 0, duplicate_batches: 0, failed_flushes: 0, merged_batches: 0 }

  constructor (opts: UsageMeterOptions) {
    if (!opts?.sink) throw new TypeError('UsageMeter needs a sink')
    if (typeof opts.relayId !== 'string' || opts.relayId.length === 0) throw new TypeError('UsageMeter needs a relayId')
    this.#sink = opts.sink
    this.#relayId = opts.relayId
    this.#intervalMs = opts.flushIntervalMs ?? 5000
    this.#maxPending = Math.max(2, opts.maxPendingBatches ?? 10_000)
    this.#maxRows = Math.max(1, opts.maxRowsPerBatch ?? 500)
    this.#log = opts.logger
    if (!(this.#intervalMs > 0)) throw new RangeError('flushIntervalMs must be > 0')
  }

  /** Adds usage to the account's bucket for the hour of `at` (default now). Bytes and counts are integers. */
  add (account: string, delta: Partial<UsageDelta>, at: Date = new Date()): void {
    if (typeof account !== 'string' || !ACCOUNT_ID.test(account)) throw new TypeError('usage: bad account id')
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new TypeError('usage: bad date')
    const d = delta ?? {}
    for (const f of ['bytes_to_destination', 'bytes_to_source', 'circuits'] as const) {
      if (d[f] !== undefined && !nonNegInt(d[f])) throw new TypeError(`usage: ${f} must be a non-negative integer`)
    }
    for (const f of ['circuit_seconds', 'reservation_seconds'] as const) {
      if (d[f] !== undefined && !nonNegFinite(d[f])) throw new TypeError(`usage: ${f} must be a non-negative number`)
    }
    const hour = hourKey(at)
    const k = `${account}\n${hour}`
    let b = this.#current.get(k)
    if (!b) {
      b = emptyBucket(account, hour)
      this.#current.set(k, b)
    }
    b.bto += d.bytes_to_destination ?? 0
    b.bts += d.bytes_to_source ?? 0
    b.circuits += d.circuits ?? 0
    b.circuitMs += Math.round((d.circuit_seconds ?? 0) * 1000)
    b.reservationMs += Math.round((d.reservation_seconds ?? 0) * 1000)
  }

  /** Flushes every flushIntervalMs until stop(). */
  start (): void {
    if (this.#timer) return
    this.#timer = setInterval(() => {
      this.flush().catch(() => {}) // logged in #drain; batches stay pending
    }, this.#intervalMs)
    this.#timer.unref()
  }

  /** Cuts the current aggregate into batches and sends every pending batch in order. Rejects if some stay pending. */
  flush (): Promise<void> {
    const run = this.#chain.then(() => this.#flushOnce())
    this.#chain = run.catch(() => {})
    return run
  }

  /** Stops the timer and flushes one last time (rejects if batches could not be written). */
  async stop (): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    try {
      await this.flush()
    } catch (err) {
      this.#log?.error({ pending_batches: this.#pending.length, err: (err as Error).message }, 'usage meter stopped with unflushed batches')
      throw err
    }
  }

  pendingBatches (): number {
    return this.#pending.length
  }

  /** Bytes of `account` in the month of `at` that this meter holds and the sink may not have yet. */
  unflushedMonthlyBytes (account: string, at: Date = new Date()): number {
    const month = monthKey(at)
    let sum = 0
    const count = (b: Bucket) => {
      if (b.account === account && b.hour.startsWith(month)) sum += b.bto + b.bts
    }
    for (const b of this.#current.values()) count(b)
    for (const batch of this.#pending) for (const b of batch.buckets) count(b)
    return sum
  }

  stats (): UsageMeterStats {
    return { ...this.#stats, pending_batches: this.#pending.length }
  }

  #cut (): void {
    const buckets = [...this.#current.values()].filter((b) => !isZero(b))
    this.#current = new Map()
    for (let i = 0; i < buckets.length; i += this.#maxRows) {
      this.#pending.push({ id: this.#nextId(), buckets: buckets.slice(i, i + this.#maxRows), attempted: false })
    }
    if (this.#pending.length > this.#maxPending) this.#compact()
  }

  #nextId (): string {
    return `${this.#relayId}:${this.bootId}:${this.#seq++}`
  }

  /** Merges the batches never handed to the sink; attempted ones keep their id and content. */
  #compact (): void {
    const attempted = this.#pending.filter((b) => b.attempted)
    const fresh = this.#pending.filter((b) => !b.attempted)
    if (fresh.length < 2) return
    const merged = new Map<string, Bucket>()
    for (const batch of fresh) {
      for (const b of batch.buckets) {
        const k = `${b.account}\n${b.hour}`
        const target = merged.get(k) ?? emptyBucket(b.account, b.hour)
        addInto(target, b)
        merged.set(k, target)
      }
    }
    const all = [...merged.values()]
    const batches: Batch[] = []
    for (let i = 0; i < all.length; i += this.#maxRows) batches.push({ id: this.#nextId(), buckets: all.slice(i, i + this.#maxRows), attempted: false })
    this.#stats.merged_batches += fresh.length
    this.#log?.warn({ merged: fresh.length, into: batches.length }, 'usage sink unavailable for long: merged pending batches')
    this.#pending = [...attempted, ...batches]
  }

  async #flushOnce (): Promise<void> {
    this.#cut()
    while (this.#pending.length > 0) {
      const batch = this.#pending[0] as Batch
      batch.attempted = true
      try {
        const applied = await this.#sink.apply(batch.id, batch.buckets.map(toRow))
        if (applied) this.#stats.flushed_batches++
        else this.#stats.duplicate_batches++
      } catch (err) {
        this.#stats.failed_flushes++
        if (!this.#failing) this.#log?.warn({ err: (err as Error).message, pending_batches: this.#pending.length }, 'usage flush failed; keeping batches to replay')
        this.#failing = true
        throw err
      }
      this.#pending.shift()
      if (this.#failing) {
        this.#failing = false
        this.#log?.info({ pending_batches: this.#pending.length }, 'usage sink reachable again; replaying pending batches')
      }
    }
  }
}

/** Usage rows of `account` (or all accounts) for hour buckets in [from, to), sorted by hour then account. */
export async function queryUsage (opts: UsageQuery & ({ sink: UsageSink } | { redisUrl: string, keyPrefix?: string })): Promise<UsageRow[]> {
  const q: UsageQuery = { from: opts.from, to: opts.to, ...(opts.account !== undefined ? { account: opts.account } : {}) }
  if ('sink' in opts) return await opts.sink.query(q)
  const sink = createRedisUsageSink({ redisUrl: opts.redisUrl, ...(opts.keyPrefix !== undefined ? { keyPrefix: opts.keyPrefix } : {}) })
  try {
    return await sink.query(q)
  } finally {
    await sink.close()
  }
}

/**
 * Flushed bytes of `account` in the month of `at`, for quota checks; add
 * `meter.unflushedMonthlyBytes()` for the local part. With `{ redisUrl }` this opens and closes a
 * connection per call (CLI, one-off checks); on a hot path keep a sink and pass `{ sink }`.
 */
export async function monthlyBytes (source: { sink: UsageSink } | { redisUrl: string, keyPrefix?: string }, account: string, at: Date = new Date()): Promise<number> {
  if ('sink' in source) return await source.sink.monthlyBytes(account, at)
  const sink = createRedisUsageSink({ redisUrl: source.redisUrl, ...(source.keyPrefix !== undefined ? { keyPrefix: source.keyPrefix } : {}) })
  try {
    return await sink.monthlyBytes(account, at)
  } finally {
    await sink.close()
  }
}

export const USAGE_CSV_COLUMNS = ['account', 'hour', 'bytes_to_destination', 'bytes_to_source', 'circuits', 'circuit_seconds', 'reservation_seconds'] as const

function csvField (v: string | number): string {
  const s = String(v)
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
}

/** RFC 4180 CSV with a header line, one line per row, `\n` line ends. */
export function usageToCsv (rows: UsageRow[]): string {
  const lines = [USAGE_CSV_COLUMNS.join(',')]
  for (const r of rows) lines.push(USAGE_CSV_COLUMNS.map((c) => csvField(r[c])).join(','))
  return lines.join('\n') + '\n'
}
