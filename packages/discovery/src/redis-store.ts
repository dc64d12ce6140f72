import { failFastRedis, LUA_NOW_MS } from '@pos-relay/accounts'
import type { Logger } from 'pino'
import { MAX_SIGNATURE_SKEW_MS } from '@pos-relay/shared'
import { assertTtl, byId, foreignKeyError, NotListedError, pickRegistration, RegistrationConflictError, replayError, skewError, unsignedError, verifyProof, StoreUnavailableError, type RelayRecord, type RelayRegistration, type RelayStore } from './types.js'

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
const NOW = LUA_NOW_MS

// The signed-entry rules, shared by REGISTER and DEREGISTER. `last` is the signed_at of the last
// signed operation accepted for the id: from the live entry, or from its tombstone once the entry
// was deleted or expired, so a captured signed registration cannot re-create it inside the skew window.
const SIGNED_RULES = `
local function signed_rules(last, signed)
  if not last then return nil end
  if not signed then return {'forbidden', 'unsigned', ''} end
  if signed <= last then return {'forbidden', 'replay', string.format('%d', last)} end
  return nil
end
local function decode(raw)
  if not raw then return nil end
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' then return rec end
  return nil
end
local function tombstone(key, peer, signed, px)
  redis.call('SET', key, string.format('{"peer_id":%s,"signed_at":%d}', cjson.encode(peer), signed), 'PX', px)
end
`

// KEYS: relay key, index, tombstone key; ARGV: id, registration JSON, ttl ms, peer id, signed_at ms ('' = unsigned), max skew ms,
// refresh only ('1' | '0')
// Returns {'ok', stored value}, {'conflict', owner peer id}, {'forbidden', reason, detail} or {'absent'} (refresh only,
// no live entry). The
// ownership and signature rules live in the script so that two writers (HTTP route, operator)
// racing for one id cannot both win. The signature itself was verified by the caller (no Ed25519
// in Lua); the script only sees verified signed_at values.
const REGISTER = `${NOW}${SIGNED_RULES}
local ttl = tonumber(ARGV[3])
local signed = tonumber(ARGV[5])
local skew = tonumber(ARGV[6])
if signed and math.abs(signed - now) > skew then return {'forbidden', 'skew', string.format('%d', now)} end
local expires = now + ttl
local registered = now
local rec = decode(redis.call('GET', KEYS[1]))
if not rec and ARGV[7] == '1' then return {'absent', ''} end
if rec then
  if type(rec.relay) == 'table' and type(rec.relay.peer_id) == 'string' and rec.relay.peer_id ~= ARGV[4] then
    return {'conflict', rec.relay.peer_id}
  end
  local refused = signed_rules(tonumber(rec.signed_at), signed)
  if refused then return refused end
  if tonumber(rec.registered_at) then registered = tonumber(rec.registered_at) end
else
  local tomb = decode(redis.call('GET', KEYS[3]))
  local refused = tomb and signed_rules(tonumber(tomb.signed_at), signed)
  if refused then return refused end
end
local value
if signed then
  value = string.format('{"registered_at":%d,"updated_at":%d,"expires_at":%d,"signed_at":%d,"relay":%s}', registered, now, expires, signed, ARGV[2])
else
  value = string.format('{"registered_at":%d,"updated_at":%d,"expires_at":%d,"relay":%s}', registered, now, expires, ARGV[2])
end
redis.call('SET', KEYS[1], value, 'PX', ttl)
-- outlives the entry by the skew window: a replay after expiry is still recognised
if signed then tombstone(KEYS[3], ARGV[4], signed, ttl + 2 * skew) end
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

// KEYS: relay key, index, tombstone key; ARGV: id, signer peer id ('' = unsigned), signed_at ms ('' = unsigned), max skew ms
// Returns {'ok', '1' | '0'} or {'forbidden', reason, detail}.
const DEREGISTER = `${NOW}${SIGNED_RULES}
local signed = tonumber(ARGV[3])
local skew = tonumber(ARGV[4])
if signed and math.abs(signed - now) > skew then return {'forbidden', 'skew', string.format('%d', now)} end
local rec = decode(redis.call('GET', KEYS[1]))
if rec then
  if signed and type(rec.relay) == 'table' and rec.relay.peer_id ~= ARGV[2] then
    return {'forbidden', 'key', tostring(rec.relay.peer_id)}
  end
  local refused = signed_rules(tonumber(rec.signed_at), signed)
  if refused then return refused end
end
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if signed and n == 1 then tombstone(KEYS[3], ARGV[2], signed, 2 * skew) end
return {'ok', tostring(n)}`

interface Scripts {
  posRelayRegister(relayKey: string, indexKey: string, tombKey: string, id: string, reg: string, ttlMs: string, peerId: string, signedAt: string, maxSkewMs: string, refreshOnly: string): Promise<[string, string, string?]>
  posRelayList(indexKey: string, relayKeyPrefix: string): Promise<string[]>
  posRelayDeregister(relayKey: string, indexKey: string, tombKey: string, id: string, signer: string, signedAt: string, maxSkewMs: string): Promise<[string, string, string?]>
}

interface Stored {
  registered_at: number
  updated_at: number
  expires_at: number
  relay: RelayRegistration
  signed_at?: number
}

function toRecord (raw: string): RelayRecord {
  const s = JSON.parse(raw) as Stored
  return {
    ...pickRegistration(s.relay),
    registered_at: new Date(s.registered_at).toISOString(),
    updated_at: new Date(s.updated_at).toISOString(),
    expires_at: new Date(s.expires_at).toISOString(),
    ...(typeof s.signed_at === 'number' ? { signed_at: s.signed_at } : {}),
  }
}

function forbidden (id: string, signedAt: number, reason: string, detail: string, signer?: string): Error {
  if (reason === 'skew') return skewError(signedAt, Number(detail))
  if (reason === 'replay') return replayError(id, signedAt, Number(detail))
  if (reason === 'key') return foreignKeyError(id, signer ?? '', detail)
  return unsignedError(id, signer === undefined ? 'register' : 'delete')
}

/**
 * Redis-backed store. Each relay is `<prefix>relay:<id>` (JSON, PX ttl) plus a member of the
 * sorted set `<prefix>relays` scored by expiry, so expiry needs no sweeper. A signed entry also
 * leaves `<prefix>signed:<id>` (its last signed_at) for its TTL plus twice the skew window. Every Redis failure
 * surfaces as StoreUnavailableError, quickly: no offline queue, bounded command timeout.
 */
export function createRedisStore (opts: RedisStoreOptions): RelayStore {
  const prefix = opts.keyPrefix ?? 'pos-relay:'
  const indexKey = `${prefix}relays`
  const relayKey = (id: string) => `${prefix}relay:${id}`
  // last signed_at of a signed entry, kept after the entry is gone (see SIGNED_RULES)
  const tombKey = (id: string) => `${prefix}signed:${id}`
  // fails fast while Redis is down and reconnects forever in the background
  const conn = failFastRedis({
    redisUrl: opts.url,
    commandTimeoutMs: opts.commandTimeoutMs,
    logger: opts.logger,
    name: 'relay-store',
    unavailable: (cause) => new StoreUnavailableError(undefined, { cause }),
  })
  const redis = conn.redis
  redis.defineCommand('posRelayRegister', { numberOfKeys: 3, lua: REGISTER })
  redis.defineCommand('posRelayList', { numberOfKeys: 1, lua: LIST })
  redis.defineCommand('posRelayDeregister', { numberOfKeys: 3, lua: DEREGISTER })
  const scripts = redis as unknown as Scripts

  return {
    async register (reg, ttlMs, proof, opts) {
      assertTtl(ttlMs)
      const relay = pickRegistration(reg)
      const refreshOnly = opts?.refreshOnly === true
      if (proof) await verifyProof({ op: refreshOnly ? 'refresh' : 'register', ...relay, signed_at: proof.signed_at }, proof.signature)
      const signedAt = proof ? String(proof.signed_at) : ''
      const [outcome, value, detail] = await conn.run(() =>
        scripts.posRelayRegister(relayKey(reg.id), indexKey, tombKey(reg.id), reg.id, JSON.stringify(relay), String(Math.ceil(ttlMs)), relay.peer_id, signedAt, String(MAX_SIGNATURE_SKEW_MS), refreshOnly ? '1' : '0')
      )
      if (outcome === 'absent') throw new NotListedError(reg.id)
      if (outcome === 'conflict') throw new RegistrationConflictError(reg.id, value)
      if (outcome === 'forbidden') throw forbidden(reg.id, proof?.signed_at ?? 0, value, detail ?? '')
      return toRecord(value)
    },
    async deregister (id, proof) {
      if (proof) await verifyProof({ op: 'delete', id, peer_id: proof.peer_id, addrs: proof.addrs, signed_at: proof.signed_at }, proof.signature)
      const [outcome, value, detail] = await conn.run(() =>
        scripts.posRelayDeregister(relayKey(id), indexKey, tombKey(id), id, proof?.peer_id ?? '', proof ? String(proof.signed_at) : '', String(MAX_SIGNATURE_SKEW_MS))
      )
      if (outcome === 'forbidden') throw forbidden(id, proof?.signed_at ?? 0, value, detail ?? '', proof?.peer_id ?? '')
      return value === '1'
    },
    async list () {
      const values = await conn.run(() => scripts.posRelayList(indexKey, relayKey('')))
      return values.map(toRecord).sort(byId)
    },
    async get (id) {
      const value = await conn.run(() => redis.get(relayKey(id)))
      return value === null ? undefined : toRecord(value)
    },
    async ping () {
      await conn.run(() => redis.ping())
    },
    async close () {
      await conn.close()
    },
  }
}
