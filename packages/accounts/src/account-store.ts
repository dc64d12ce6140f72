import type { Account, AccountStore } from './contract.js'
import { ACCOUNT_ID, apiKeyId, apiKeyMatches, newAccountId, newApiKey } from './api-keys.js'
import { failFastRedis } from './redis.js'
import type { MinimalLogger, RevocationBus } from './types.js'

export const ACCOUNT_NAME_MAX = 128

function checkInput (input: { name: string, tier: string }): void {
  if (typeof input?.name !== 'string' || input.name.trim().length === 0 || input.name.length > ACCOUNT_NAME_MAX) {
    throw new TypeError(`account name must be 1-${ACCOUNT_NAME_MAX} characters`)
  }
  if (typeof input.tier !== 'string' || input.tier.length === 0 || input.tier.length > 64) {
    throw new TypeError('account tier must be a non-empty string')
  }
}

export interface MemoryAccountStoreOptions {
  /** disable() publishes `{kind:'account', id}` here; enable() reinstates */
  revocations?: RevocationBus
}

/** In-process store for tests and `pos-relay dev`. */
export function createMemoryAccountStore (opts: MemoryAccountStoreOptions = {}): AccountStore {
  const accounts = new Map<string, { account: Account, hash: string }>()
  const byKeyId = new Map<string, string>()
  const copy = (a: Account): Account => ({ ...a })
  return {
    async create (input) {
      checkInput(input)
      const key = newApiKey()
      const account: Account = {
        id: newAccountId(),
        name: input.name,
        tier: input.tier,
        disabled: false,
        created_at: new Date().toISOString(),
        key_id: key.keyId,
      }
      accounts.set(account.id, { account, hash: key.hash })
      byKeyId.set(key.keyId, account.id)
      return { account: copy(account), api_key: key.apiKey }
    },
    async list () {
      return [...accounts.values()].map((e) => copy(e.account)) // Map keeps creation order
    },
    async get (id) {
      const e = accounts.get(id)
      return e && copy(e.account)
    },
    async disable (id) {
      const e = accounts.get(id)
      if (!e) return undefined
      e.account.disabled = true
      await opts.revocations?.publish({ kind: 'account', id })
      return copy(e.account)
    },
    async enable (id) {
      const e = accounts.get(id)
      if (!e) return undefined
      e.account.disabled = false
      await opts.revocations?.reinstateAccount(id)
      return copy(e.account)
    },
    async rotateKey (id) {
      const e = accounts.get(id)
      if (!e) return undefined
      const key = newApiKey()
      byKeyId.delete(e.account.key_id)
      byKeyId.set(key.keyId, id)
      e.account.key_id = key.keyId
      e.hash = key.hash
      return { account: copy(e.account), api_key: key.apiKey }
    },
    async authenticate (apiKey) {
      const keyId = apiKeyId(apiKey)
      const id = keyId === undefined ? undefined : byKeyId.get(keyId)
      const e = id === undefined ? undefined : accounts.get(id)
      // compare even when nothing was found, so both paths cost the same
      const ok = apiKeyMatches(typeof apiKey === 'string' ? apiKey : '', e?.hash)
      return ok && e && !e.account.disabled ? copy(e.account) : undefined
    },
    async close () {},
  }
}

export interface RedisAccountStoreOptions {
  redisUrl: string
  /** default 'pos-relay:' */
  keyPrefix?: string
  /** disable() publishes `{kind:'account', id}` here; enable() reinstates */
  revocations?: RevocationBus
  /** default 1000 ms */
  commandTimeoutMs?: number
  logger?: MinimalLogger
}

// KEYS: account hash, accounts index, key index, sequence; ARGV: id, name, tier, created_at, key id, key hash
const CREATE = `if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'name', ARGV[2], 'tier', ARGV[3], 'disabled', '0', 'created_at', ARGV[4], 'key_id', ARGV[5], 'key_hash', ARGV[6])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
return 1`

// KEYS: account hash; ARGV: disabled flag
const SET_DISABLED = `if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HSET', KEYS[1], 'disabled', ARGV[1])
return redis.call('HGETALL', KEYS[1])`

// KEYS: account hash, new key index; ARGV: id, key prefix, new key id, new hash
const ROTATE = `if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
local old = redis.call('HGET', KEYS[1], 'key_id')
if old then redis.call('DEL', ARGV[2] .. old) end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'key_id', ARGV[3], 'key_hash', ARGV[4])
return redis.call('HGETALL', KEYS[1])`

interface Scripts {
  posRelayAccountCreate(...args: string[]): Promise<number>
  posRelayAccountSetDisabled(key: string, flag: string): Promise<string[] | null>
  posRelayAccountRotate(key: string, keyIndex: string, id: string, keyPrefix: string, keyId: string, hash: string): Promise<string[] | null>
}

function pairs (flat: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string
  return out
}

function toAccount (h: Record<string, string>): Account | undefined {
  if (!h.id) return undefined
  return { id: h.id, name: h.name ?? '', tier: h.tier ?? '', disabled: h.disabled === '1', created_at: h.created_at ?? '', key_id: h.key_id ?? '' }
}

/**
 * Redis layout: `<prefix>account:<id>` hash {id, name, tier, disabled, created_at, key_id, key_hash},
 * `<prefix>accounts` sorted set of ids scored by a creation sequence (`<prefix>accounts:seq`), `<prefix>apikey:<key id>` → account id.
 * Writes are single Lua scripts (atomic, one round trip). Redis failures → AccountsUnavailableError.
 */
export function createRedisAccountStore (opts: RedisAccountStoreOptions): AccountStore {
  const prefix = opts.keyPrefix ?? 'pos-relay:'
  const accountKey = (id: string) => `${prefix}account:${id}`
  const indexKey = `${prefix}accounts`
  const keyIndexPrefix = `${prefix}apikey:`
  const conn = failFastRedis({ redisUrl: opts.redisUrl, commandTimeoutMs: opts.commandTimeoutMs, logger: opts.logger, name: 'account-store' })
  conn.redis.defineCommand('posRelayAccountCreate', { numberOfKeys: 4, lua: CREATE })
  conn.redis.defineCommand('posRelayAccountSetDisabled', { numberOfKeys: 1, lua: SET_DISABLED })
  conn.redis.defineCommand('posRelayAccountRotate', { numberOfKeys: 2, lua: ROTATE })
  const scripts = conn.redis as unknown as Scripts
  const valid = (id: unknown): id is string => typeof id === 'string' && ACCOUNT_ID.test(id)

  const getRaw = async (id: string): Promise<Record<string, string>> => await conn.run((r) => r.hgetall(accountKey(id)))

  return {
    async create (input) {
      checkInput(input)
      const key = newApiKey()
      const account: Account = { id: newAccountId(), name: input.name, tier: input.tier, disabled: false, created_at: new Date().toISOString(), key_id: key.keyId }
      const created = await conn.run(() =>
        scripts.posRelayAccountCreate(accountKey(account.id), indexKey, keyIndexPrefix + key.keyId, `${indexKey}:seq`, account.id, account.name, account.tier, account.created_at, key.keyId, key.hash)
      )
      if (created !== 1) throw new Error('account id collision; try again')
      return { account, api_key: key.apiKey }
    },
    async list () {
      const ids = await conn.run((r) => r.zrange(indexKey, 0, -1))
      if (ids.length === 0) return []
      const res = await conn.run(async (r) => {
        const p = r.pipeline()
        for (const id of ids) p.hgetall(accountKey(id))
        const out = await p.exec()
        if (!out) throw new Error('pipeline aborted')
        return out
      })
      // in creation order (the index is scored by a sequence number)
      return res.flatMap(([err, h]) => {
        const a = err ? undefined : toAccount(h as Record<string, string>)
        return a ? [a] : []
      })
    },
    async get (id) {
      if (!valid(id)) return undefined
      return toAccount(await getRaw(id))
    },
    async disable (id) {
      if (!valid(id)) return undefined
      const flat = await conn.run(() => scripts.posRelayAccountSetDisabled(accountKey(id), '1'))
      if (!flat) return undefined
      await opts.revocations?.publish({ kind: 'account', id })
      return toAccount(pairs(flat))
    },
    async enable (id) {
      if (!valid(id)) return undefined
      const flat = await conn.run(() => scripts.posRelayAccountSetDisabled(accountKey(id), '0'))
      if (!flat) return undefined
      await opts.revocations?.reinstateAccount(id)
      return toAccount(pairs(flat))
    },
    async rotateKey (id) {
      if (!valid(id)) return undefined
      const key = newApiKey()
      const flat = await conn.run(() => scripts.posRelayAccountRotate(accountKey(id), keyIndexPrefix + key.keyId, id, keyIndexPrefix, key.keyId, key.hash))
      if (!flat) return undefined
      const account = toAccount(pairs(flat))
      return account && { account, api_key: key.apiKey }
    },
    async authenticate (apiKey) {
      const keyId = apiKeyId(apiKey)
      let h: Record<string, string> = {}
      if (keyId !== undefined) {
        const id = await conn.run((r) => r.get(keyIndexPrefix + keyId))
        if (id !== null && valid(id)) h = await getRaw(id)
      }
      const ok = apiKeyMatches(typeof apiKey === 'string' ? apiKey : '', h.key_hash)
      // the key id must still be the account's current one (rotation replaces it atomically)
      return ok && h.key_id === keyId && h.disabled !== '1' ? toAccount(h) : undefined
    },
    async close () {
      await conn.close()
    },
  }
}
