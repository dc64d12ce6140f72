import { failFastRedis } from '@pos-relay/accounts'
import type { Logger } from 'pino'
import { MAX_SIGNATURE_SKEW_MS } from '@pos-relay/shared'
import {
  assertTtl,
  byId,
  foreignKeyError,
  pickRegistration,
  RegistrationConflictError,
  replayError,
  skewError,
  unsignedError,
  verifyProof,
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
// Stored value: {"registered_at":ms,"updated_at":ms,"expires_at":ms,"relay":<registration JSON>[,"signed_at":ms]}
// signed_at is present when the entry was registered signed: the last signed operation accepted.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// KEYS: relay key, index; ARGV: id, registration JSON, ttl ms, peer id, signed_at ms ('' = unsigned), max skew ms
// Returns {'ok', stored value}, {'conflict', owner peer id} or {'forbidden', reason, detail}. The
// ownership and signature rules live in the script so that two writers (HTTP route, operator)
// racing for one id cannot both win. The signature itself was verified by the caller (no Ed25519
// in Lua); the script only sees verified signed_at values.
const REGISTER = `${NOW}
local ttl = tonumber(ARGV[3])
local signed = tonumber(ARGV[5])
if signed and math.abs(signed - now) > tonumber(ARGV[6]) then return {'forbidden', 'skew', string.format('%d', now)} end
local expires = now + ttl
local registered = now
local prev = redis.call('GET', KEYS[1])
if prev then
  local ok, rec = pcall(cjson.decode, prev)
  if ok and type(rec) == 'table' then
    if type(rec.relay) == 'table' and type(rec.relay.peer_id) == 'string' and rec.relay.peer_id ~= ARGV[4] then
      return {'conflict', rec.relay.peer_id}
    end
    local last = tonumber(rec.signed_at)
    if last then
      if not signed then return {'forbidden', 'unsigned', ''} end
      if signed <= last then return {'forbidden', 'replay', string.format('%d', last)} end
    end
    if tonumber(rec.registered_at) then registered = tonumber(rec.registered_at) end
  end
end
local value
if signed then
  value = string.format('{"registered_at":%d,"updated_at":%d,"expires_at":%d,"signed_at":%d,"relay":%s}', registered, now, expires, signed, ARGV[2])
else
  value = string.format('{"registered_at":%d,"updated_at":%d,"expires_at":%d,"relay":%s}', registered, now, expires, ARGV[2])
end
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

// KEYS: relay key, index; ARGV: id, signer peer id ('' = unsigned), signed_at ms ('' = unsigned), max skew ms
// Returns {'ok', '1' | '0'} or {'forbidden', reason, detail}.
const DEREGISTER = `${NOW}
local signed = tonumber(ARGV[3])
if signed and math.abs(signed - now) > tonumber(ARGV[4]) then return {'forbidden', 'skew', string.format('%d', now)} end
local prev = redis.call('GET', KEYS[1])
if prev then
  local ok, rec = pcall(cjson.decode, prev)
  if ok and type(rec) == 'table' then
    if signed and type(rec.relay) == 'table' and rec.relay.peer_id ~= ARGV[2] then
      return {'forbidden', 'key', tostring(rec.relay.peer_id)}
    end
    local last = tonumber(rec.signed_at)
    if last then
      if not signed then return {'forbidden', 'unsigned', ''} end
      if signed <= last then return {'forbidden', 'replay', string.format('%d', last)} end
    end
  end
end
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'ok', tostring(n)}`

interface Scripts {
  posRelayRegister(relayKey: string, indexKey: string, id: string, reg: string, ttlMs: string, peerId: string, signedAt: string, maxSkewMs: string): Promise<[string, string, string?]>
  posRelayList(indexKey: string, relayKeyPrefix: string): Promise<string[]>
  posRelayDeregister(relayKey: string, indexKey: string, id: string, signer: string, signedAt: string, maxSkewMs: string): Promise<[string, string, string?]>
}

interface Stored {
  registered_at: number
  updated_at: number
  expires_at: number
  relay: RelayRegistration
  signed_at?: number
}

function toRecord(raw: string): RelayRecord {
  const s = JSON.parse(raw) as Stored
  return {
    ...pickRegistration(s.relay),
    registered_at: new Date(s.registered_at).toISOString(),
    updated_at: new Date(s.updated_at).toISOString(),
    expires_at: new Date(s.expires_at).toISOString(),
    ...(typeof s.signed_at === 'number' ? { signed_at: s.signed_at } : {}),
  }
}

function forbidden(id: string, signedAt: number, reason: string, detail: string, signer?: string): Error {
  if (reason === 'skew') return skewError(signedAt, Number(detail))
  if (reason === 'replay') return replayError(id, signedAt, Number(detail))
  if (reason === 'key') return foreignKeyError(id, signer ?? '', detail)
  return unsignedError(id, signer === undefined ? 'register' : 'delete')
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
    async register(reg, ttlMs, proof) {
      assertTtl(ttlMs)
      const relay = pickRegistration(reg)
      if (proof) await verifyProof({ op: 'register', ...relay, signed_at: proof.signed_at }, proof.signature)
      const signedAt = proof ? String(proof.signed_at) : ''
      const [outcome, value, detail] = await conn.run(() =>
        scripts.posRelayRegister(relayKey(reg.id), indexKey, reg.id, JSON.stringify(relay), String(Math.ceil(ttlMs)), relay.peer_id, signedAt, String(MAX_SIGNATURE_SKEW_MS)),
      )
      if (outcome === 'conflict') throw new RegistrationConflictError(reg.id, value)
      if (outcome === 'forbidden') throw forbidden(reg.id, proof?.signed_at ?? 0, value, detail ?? '')
      return toRecord(value)
    },
    async deregister(id, proof) {
      if (proof) await verifyProof({ op: 'delete', id, peer_id: proof.peer_id, addrs: proof.addrs, signed_at: proof.signed_at }, proof.signature)
      const [outcome, value, detail] = await conn.run(() =>
        scripts.posRelayDeregister(relayKey(id), indexKey, id, proof?.peer_id ?? '', proof ? String(proof.signed_at) : '', String(MAX_SIGNATURE_SKEW_MS)),
      )
      if (outcome === 'forbidden') throw forbidden(id, proof?.signed_at ?? 0, value, detail ?? '', proof?.peer_id ?? '')
      return value === '1'
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
