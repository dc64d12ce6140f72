import { randomBytes } from 'node:crypto'
import type { UsageDelta } from '../contract.js'
import { ACCOUNT_ID } from '../api-keys.js'
import type { MinimalLogger } from '../types.js'
import { addInto, emptyBucket, hourKey, isZero, monthKey, nonNegFinite, nonNegInt, toRow, type Bucket, type UsageSink } from './usage-sink.js'

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
