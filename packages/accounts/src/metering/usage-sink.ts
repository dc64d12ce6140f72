/**
 * The usage sink contract and the integer bucket form every sink and the meter share: usage per
 * account and UTC hour, seconds kept as whole milliseconds so sums stay exact.
 */
import type { UsageRow } from '../contract.js'
import { ACCOUNT_ID } from '../api-keys.js'

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

/** Internal integer form: seconds are kept as whole milliseconds so sums stay exact. */
export interface Bucket {
  account: string
  /** YYYY-MM-DDTHH (UTC) */
  hour: string
  bto: number
  bts: number
  circuits: number
  circuitMs: number
  reservationMs: number
}

export const FIELDS = ['bytes_to_destination', 'bytes_to_source', 'circuits', 'circuit_ms', 'reservation_ms'] as const

export function hourKey (at: Date): string {
  return at.toISOString().slice(0, 13)
}
export function monthKey (at: Date): string {
  return at.toISOString().slice(0, 7)
}
export const hourIso = (key: string) => `${key}:00:00.000Z`

export function emptyBucket (account: string, hour: string): Bucket {
  return { account, hour, bto: 0, bts: 0, circuits: 0, circuitMs: 0, reservationMs: 0 }
}
export function addInto (target: Bucket, b: Bucket): void {
  target.bto += b.bto
  target.bts += b.bts
  target.circuits += b.circuits
  target.circuitMs += b.circuitMs
  target.reservationMs += b.reservationMs
}
export const isZero = (b: Bucket) => b.bto === 0 && b.bts === 0 && b.circuits === 0 && b.circuitMs === 0 && b.reservationMs === 0

export function toRow (b: Bucket): UsageRow {
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

export const nonNegInt = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
export const nonNegFinite = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0

export function fromRow (r: UsageRow): Bucket {
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

export function checkQuery (q: UsageQuery): string[] {
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

export const byHourThenAccount = (a: UsageRow, b: UsageRow) => (a.hour < b.hour ? -1 : a.hour > b.hour ? 1 : a.account < b.account ? -1 : a.account > b.account ? 1 : 0)
