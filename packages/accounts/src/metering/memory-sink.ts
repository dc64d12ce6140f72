import { addInto, byHourThenAccount, checkQuery, emptyBucket, fromRow, isZero, monthKey, toRow, type Bucket, type UsageSink } from './usage-sink.js'

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
