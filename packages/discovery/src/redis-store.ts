import { failFastRedis } from '@pos-relay/accounts'
import type { Logger } from 'pino'
import {
  assertTtl,
  byId,
  pickRegistration,
  RegistrationConflictError,
  StoreUnavailableError,
  type RelayRecord,
  type RelayRegistration,
  type RelayStore,
} from './types.js'

export interface RedisStoreOptions {
  url: string
  /** prefix of every key this store touches; default 'pos-relay:' */
  keyPrefix?: string
  /** per-command timeout; default 1000 ms */
  commandTimeoutMs?: number
  logger?: Logger
}

// All scripts take "now" from the Redis server clock, so replicas with skewed clocks agree.
// Stored value: {"registered_at":ms,"updated_at":ms,"expires_at":ms,"relay":<registration JSON>}
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// KEYS: relay key, index; ARGV: id, registration JSON, ttl ms, peer id
// Returns {'ok', stored value} or {'conflict', owner peer id}. The ownership check lives in the
// script so that two writers (HTTP route, operator) racing for one id cannot both win.
const REGISTER = `${NOW}
local ttl = tonumber(ARGV[3])
local expires = now + ttl
local registered = now
local prev = redis.call('GET', KEYS[1])
if prev then
  local ok, rec = pcall(cjson.decode, prev)
  if ok and type(rec) == 'table' then
    if type(rec.relay) == 'table' and type(rec.relay.peer_id) == 'string' and rec.relay.peer_id ~= ARGV[4] then
      return {'conflict', rec.relay.peer_id}
    end
    if tonumber(rec.registered_at) then registered = tonumber(rec.registered_at) end
  end
end
local value = string.format('{"registered_at":%d,"updated_at":%d,"expires_at":%d,"relay":%s}', registered, now, expires, ARGV[2])
redis.call('SET', KEYS[1], value, 'PX', ttl)
redis.call('ZADD', KEYS[2], expires, ARGV[1])
-- the index is pruned here instead of by a sweeper process
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return {'ok', value}`

// KEYS: index; ARGV: relay key prefix. Reads relay keys not passed in KEYS, so standalone Redis only (no Cluster).
const LIST = `${NOW}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf')
local out = {}
for i = 1, #ids, 500 do -- chunked: unpack() is limited by the Lua stack size
  local keys = {}
  for j = i, math.min(i + 499, #ids) do keys[#keys + 1] = ARGV[1] .. ids[j] end
  for _, v in ipairs(redis.call('MGET', unpack(keys))) do
    if v then out[#out + 1] = v end
  end
end
return out`

// KEYS: relay key, index; ARGV: id
const DEREGISTER = `local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n`

interface Scripts {
  posRelayRegister(relayKey: string, indexKey: string, id: string, reg: string, ttlMs: string, peerId: string): Promise<[string, string]>
  posRelayList(indexKey: string, relayKeyPrefix: string): Promise<string[]>
  posRelayDeregister(relayKey: string, indexKey: string, id: string): Promise<number>
}

interface Stored {
  registered_at: number
  updated_at: number
  expires_at: number
  relay: RelayRegistration
}

function toRecord(raw: string): RelayRecord {
  const s = JSON.parse(raw) as Stored
  return {
    ...pickRegistration(s.relay),
    registered_at: new Date(s.registered_at).toISOString(),
    updated_at: new Date(s.updated_at).toISOString(),
    expires_at: new Date(s.expires_at).toISOString(),
  }
}

/**
 * Redis-backed store. Each relay is `<prefix>relay:<id>` (JSON, PX ttl) plus a member of the
 * sorted set `<prefix>relays` scored by expiry, so expiry needs no sweeper. Every Redis failure
 * surfaces as StoreUnavailableError, quickly: no offline queue, bounded command timeout.
 */
export function createRedisStore(opts: RedisStoreOptions): RelayStore {
  const prefix = opts.keyPrefix ?? 'pos-relay:'
  const indexKey = `${prefix}relays`
  const relayKey = (id: string) => `${prefix}relay:${id}`
  // fails fast while Redis is down and reconnects forever in the background
  const conn = failFastRedis({
    redisUrl: opts.url,
    commandTimeoutMs: opts.commandTimeoutMs,
    logger: opts.logger,
    name: 'relay-store',
    unavailable: (cause) => new StoreUnavailableError(undefined, { cause }),
  })
  const redis = conn.redis
  redis.defineCommand('posRelayRegister', { numberOfKeys: 2, lua: REGISTER })
  redis.defineCommand('posRelayList', { numberOfKeys: 1, lua: LIST })
  redis.defineCommand('posRelayDeregister', { numberOfKeys: 2, lua: DEREGISTER })
  const scripts = redis as unknown as Scripts

  return {
    async register(reg, ttlMs) {
      assertTtl(ttlMs)
      const relay = pickRegistration(reg)
      const [outcome, value] = await conn.run(() =>
        scripts.posRelayRegister(relayKey(reg.id), indexKey, reg.id, JSON.stringify(relay), String(Math.ceil(ttlMs)), relay.peer_id),
      )
      if (outcome === 'conflict') throw new RegistrationConflictError(reg.id, value)
      return toRecord(value)
    },
    async deregister(id) {
      return (await conn.run(() => scripts.posRelayDeregister(relayKey(id), indexKey, id))) === 1
    },
    async list() {
      const values = await conn.run(() => scripts.posRelayList(indexKey, relayKey('')))
      return values.map(toRecord).sort(byId)
    },
    async get(id) {
      const value = await conn.run(() => redis.get(relayKey(id)))
      return value === null ? undefined : toRecord(value)
    },
    async ping() {
      await conn.run(() => redis.ping())
    },
    async close() {
      await conn.close()
    },
  }
}
