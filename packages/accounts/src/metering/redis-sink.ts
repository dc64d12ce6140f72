import type { UsageRow } from '../contract.js'
import { failFastRedis } from '../redis.js'
import type { MinimalLogger } from '../types.js'
import { byHourThenAccount, checkQuery, emptyBucket, FIELDS, fromRow, isZero, monthKey, toRow, type UsageSink } from './usage-sink.js'

/** How long a flush marker is kept: a batch retried later than this would count twice. */
export const FLUSH_MARKER_TTL_SECONDS = 2 * 24 * 60 * 60
/** Monthly quota counters expire after this (well after their month ended). */
export const QUOTA_COUNTER_TTL_SECONDS = 100 * 24 * 60 * 60

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
