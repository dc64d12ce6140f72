import type { UsageRow } from '../contract.js'
import { createRedisUsageSink } from './redis-sink.js'
import type { UsageQuery, UsageSink } from './usage-sink.js'

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
