import { Redis } from 'ioredis'
import { backoffDelay } from '@pos-relay/shared'
import { z } from 'zod'
import type { RevocationEvent } from './contract.js'
import { failFastRedis, LUA_NOW_MS, quit } from './redis.js'
import type { MinimalLogger, RevocationBus } from './types.js'

/** Revoked-ticket records outlive any ticket: tickets live at most 1 h (plus clock tolerance). */
export const TICKET_REVOCATION_TTL_SECONDS = 2 * 60 * 60

const messageSchema = z.object({
  op: z.enum(['revoke', 'reinstate']),
  kind: z.enum(['account', 'ticket']),
  id: z.string().min(1).max(256),
})
type Message = z.infer<typeof messageSchema>

function assertEvent (evt: RevocationEvent): void {
  if ((evt?.kind !== 'account' && evt?.kind !== 'ticket') || typeof evt.id !== 'string' || evt.id.length === 0 || evt.id.length > 256) {
    throw new TypeError('a revocation event is { kind: "account" | "ticket", id: non-empty string }')
  }
}

/** What a bus has seen (published or received); the fallback answer when Redis is unreachable. */
class SeenState {
  readonly accounts = new Set<string>()
  private readonly tickets = new Map<string, number>()

  addTicket (jti: string, expiresAt: number): void {
    this.tickets.set(jti, Math.max(expiresAt, this.tickets.get(jti) ?? 0))
    if (this.tickets.size > 10_000) this.prune()
  }

  hasTicket (jti: string): boolean {
    const until = this.tickets.get(jti)
    return until !== undefined && until > Date.now()
  }

  isRevoked (claims: { account: string, jti: string }): boolean {
    return this.accounts.has(claims.account) || this.hasTicket(claims.jti)
  }

  private prune (): void {
    const now = Date.now()
    for (const [jti, until] of this.tickets) if (until <= now) this.tickets.delete(jti)
  }
}

class Handlers {
  private readonly set = new Set<(evt: RevocationEvent) => void>()
  constructor (private readonly log?: MinimalLogger) {}
  add (handler: (evt: RevocationEvent) => void): () => void {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function')
    const h = (evt: RevocationEvent) => handler(evt)
    this.set.add(h)
    return () => void this.set.delete(h)
  }

  emit (evt: RevocationEvent): void {
    for (const h of this.set) {
      try {
        h({ kind: evt.kind, id: evt.id })
      } catch (err) {
        this.log?.error({ err: (err as Error)?.message, kind: evt.kind }, 'revocation handler threw')
      }
    }
  }
}

/** In-process bus for tests and `pos-relay dev` (share one object between discovery and relay). */
export function createMemoryRevocationBus (opts: { logger?: MinimalLogger } = {}): RevocationBus {
  const seen = new SeenState()
  const handlers = new Handlers(opts.logger)
  let closed = false
  return {
    async publish (evt) {
      assertEvent(evt)
      if (closed) throw new Error('revocation bus is closed')
      if (evt.kind === 'account') seen.accounts.add(evt.id)
      else seen.addTicket(evt.id, Date.now() + TICKET_REVOCATION_TTL_SECONDS * 1000)
      handlers.emit(evt)
    },
    subscribe: (handler) => handlers.add(handler),
    async isRevoked (claims) {
      return seen.isRevoked(claims)
    },
    async reinstateAccount (id) {
      seen.accounts.delete(id)
    },
    async close () {
      closed = true
    },
  }
}

export interface RedisRevocationBusOptions {
  redisUrl: string
  /** default 'pos-relay:' */
  keyPrefix?: string
  /** per-command timeout of publish / isRevoked; default 1000 ms */
  commandTimeoutMs?: number
  logger?: MinimalLogger
}

// KEYS: accounts set, ticket key, tickets index; ARGV: op, kind, id, ticket ttl s, message, channel
const PUBLISH = `${LUA_NOW_MS}if ARGV[2] == 'account' then
  if ARGV[1] == 'revoke' then redis.call('SADD', KEYS[1], ARGV[3]) else redis.call('SREM', KEYS[1], ARGV[3]) end
else
  local ttl = tonumber(ARGV[4])
  redis.call('SET', KEYS[2], '1', 'EX', ttl)
  redis.call('ZADD', KEYS[3], now + ttl * 1000, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
end
return redis.call('PUBLISH', ARGV[6], ARGV[5])`

interface Scripts {
  posRelayRevoke(accounts: string, ticket: string, tickets: string, op: string, kind: string, id: string, ttl: string, message: string, channel: string): Promise<number>
}

/**
 * Redis-backed bus. Persistent records: `<prefix>revoked:accounts` (set of disabled accounts),
 * `<prefix>revoked:ticket:<jti>` (EX 2 h) indexed by the sorted set `<prefix>revoked:tickets`;
 * broadcasts on the channel `<prefix>revocations`. Record and broadcast happen in one script.
 *
 * The subscriber connection reconnects on its own (ioredis) and re-subscribes; after every
 * reconnect it reads the persistent records and delivers the revocations it missed meanwhile.
 *
 * `isRevoked` asks Redis (one round trip). When Redis is unreachable it answers from what this
 * bus has seen (published, received on the channel, or read at the last sync): it fails OPEN for
 * revocations it never saw, because failing closed would stop all relaying during a Redis outage.
 */
export function createRedisRevocationBus (opts: RedisRevocationBusOptions): RevocationBus {
  const prefix = opts.keyPrefix ?? 'pos-relay:'
  const log = opts.logger
  const accountsKey = `${prefix}revoked:accounts`
  const ticketKey = (jti: string) => `${prefix}revoked:ticket:${jti}`
  const ticketsKey = `${prefix}revoked:tickets`
  const channel = `${prefix}revocations`
  const cmd = failFastRedis({ redisUrl: opts.redisUrl, commandTimeoutMs: opts.commandTimeoutMs, logger: log, name: 'revocation-bus' })
  cmd.redis.defineCommand('posRelayRevoke', { numberOfKeys: 3, lua: PUBLISH })
  const scripts = cmd.redis as unknown as Scripts
  const seen = new SeenState()
  const handlers = new Handlers(log)
  let sub: Redis | undefined
  let closed = false
  let syncs = 0
  let syncTimer: NodeJS.Timeout | undefined

  const send = async (m: Message) => {
    if (closed) throw new Error('revocation bus is closed')
    await cmd.run(() =>
      scripts.posRelayRevoke(accountsKey, ticketKey(m.kind === 'ticket' ? m.id : ''), ticketsKey, m.op, m.kind, m.id, String(TICKET_REVOCATION_TTL_SECONDS), JSON.stringify(m), channel)
    )
  }

  const onMessage = (ch: string, raw: string) => {
    if (ch !== channel) return
    let m: Message
    try {
      m = messageSchema.parse(JSON.parse(raw))
    } catch {
      log?.warn({ channel }, 'ignoring a malformed revocation message')
      return
    }
    if (m.op === 'reinstate') {
      if (m.kind === 'account') seen.accounts.delete(m.id)
      return
    }
    if (m.kind === 'account') seen.accounts.add(m.id)
    else seen.addTicket(m.id, Date.now() + TICKET_REVOCATION_TTL_SECONDS * 1000)
    handlers.emit({ kind: m.kind, id: m.id })
  }

  /** Reads the persistent records; after a reconnect, delivers what was missed. */
  const sync = async () => {
    clearTimeout(syncTimer)
    const first = syncs === 0
    try {
      const [accounts, tickets] = await cmd.run(async (r) => {
        const res = await r.multi().smembers(accountsKey).zrangebyscore(ticketsKey, Date.now(), '+inf', 'WITHSCORES').exec()
        if (!res) throw new Error('sync transaction aborted')
        for (const [err] of res) if (err) throw err
        return [res[0]?.[1] as string[], res[1]?.[1] as string[]] as const
      })
      syncs++
      const now = new Set(accounts)
      for (const id of [...seen.accounts]) if (!now.has(id)) seen.accounts.delete(id)
      for (const id of accounts) {
        if (seen.accounts.has(id)) continue
        seen.accounts.add(id)
        if (!first) handlers.emit({ kind: 'account', id })
      }
      for (let i = 0; i + 1 < tickets.length; i += 2) {
        const jti = tickets[i] as string
        const known = seen.hasTicket(jti)
        seen.addTicket(jti, Number(tickets[i + 1]))
        if (!known && !first) handlers.emit({ kind: 'ticket', id: jti })
      }
    } catch (err) {
      log?.warn({ err: (err as Error).message }, 'revocation sync failed; retrying')
      if (!closed) syncTimer = setTimeout(() => void sync(), 1000).unref()
    }
  }

  const ensureSubscribed = () => {
    if (sub || closed) return
    sub = new Redis(opts.redisUrl, {
      // a subscriber has nothing to time out; keep reconnecting (and re-subscribing) forever
      retryStrategy: (times) => backoffDelay(times - 1, { initialMs: 100, maxMs: 1000 }),
      maxRetriesPerRequest: null,
      autoResubscribe: true,
    })
    let outageLogged = false
    sub.on('error', (err: Error) => {
      if (outageLogged) return
      outageLogged = true
      log?.warn({ err: err.message }, 'revocation subscriber: redis connection error')
    })
    sub.on('ready', () => {
      outageLogged = false
      void sync()
    })
    sub.on('message', onMessage)
    sub.subscribe(channel).catch((err: Error) => log?.warn({ err: err.message }, 'revocation subscribe failed; will retry on reconnect'))
  }

  return {
    async publish (evt) {
      assertEvent(evt)
      await send({ op: 'revoke', kind: evt.kind, id: evt.id })
      if (evt.kind === 'account') seen.accounts.add(evt.id)
      else seen.addTicket(evt.id, Date.now() + TICKET_REVOCATION_TTL_SECONDS * 1000)
    },
    subscribe (handler) {
      ensureSubscribed()
      return handlers.add(handler)
    },
    async isRevoked (claims) {
      ensureSubscribed()
      try {
        const [account, ticket] = await cmd.run(async (r) => {
          const res = await r.pipeline().sismember(accountsKey, claims.account).exists(ticketKey(claims.jti)).exec()
          if (!res) throw new Error('pipeline aborted')
          for (const [err] of res) if (err) throw err
          return [res[0]?.[1] === 1, res[1]?.[1] === 1]
        })
        if (account) seen.accounts.add(claims.account)
        else seen.accounts.delete(claims.account)
        if (ticket) seen.addTicket(claims.jti, Date.now() + TICKET_REVOCATION_TTL_SECONDS * 1000)
        return account || ticket
      } catch {
        return seen.isRevoked(claims)
      }
    },
    async reinstateAccount (id) {
      if (typeof id !== 'string' || id.length === 0) throw new TypeError('account id must be a non-empty string')
      await send({ op: 'reinstate', kind: 'account', id })
      seen.accounts.delete(id)
    },
    async close () {
      closed = true
      clearTimeout(syncTimer)
      if (sub) await quit(sub)
      await cmd.close()
    },
  }
}
