import { once } from 'node:events'
import { Redis } from 'ioredis'
import { backoffDelay } from '@pos-relay/shared'
import { AccountsUnavailableError, type MinimalLogger } from './types.js'

export interface RedisConnectionOptions {
  redisUrl: string
  /** per-command timeout; default 1000 ms */
  commandTimeoutMs?: number
  logger?: MinimalLogger
  /** for log lines */
  name: string
  /** the error a failed command becomes; default AccountsUnavailableError */
  unavailable?: (cause: unknown) => Error
}

/**
 * Lua prelude that sets `now` to the Redis server's clock in ms: scripts that take the time from
 * Redis agree across clients with skewed clocks.
 */
export const LUA_NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

export interface FailFastRedis {
  redis: Redis
  /** runs fn, turning any Redis failure into `unavailable(cause)` (AccountsUnavailableError by default) */
  run: <T>(fn: (redis: Redis) => Promise<T>) => Promise<T>
  close: () => Promise<void>
}

/**
 * A command connection that fails fast while Redis is down (no offline queue, bounded command
 * timeout) and reconnects forever in the background, so service resumes on its own. Used by the
 * account services and by the discovery's relay store.
 */
export function failFastRedis (opts: RedisConnectionOptions): FailFastRedis {
  const timeoutMs = opts.commandTimeoutMs ?? 1000
  const log = opts.logger
  const unavailable = opts.unavailable ?? ((cause: unknown) => new AccountsUnavailableError(undefined, { cause }))
  const redis = new Redis(opts.redisUrl, {
    enableOfflineQueue: false,
    commandTimeout: timeoutMs,
    connectTimeout: Math.max(2 * timeoutMs, 1000),
    maxRetriesPerRequest: 1,
    // at most every second
    retryStrategy: (times) => backoffDelay(times - 1, { initialMs: 100, maxMs: 1000 }),
  })
  let everReady = false
  let outageLogged = false
  redis.on('ready', () => {
    everReady = true
    if (outageLogged) log?.info({ component: opts.name }, 'redis connection ready again')
    outageLogged = false
  })
  // Without an 'error' listener ioredis errors would crash the process; log once per outage.
  redis.on('error', (err: Error) => {
    if (outageLogged) return
    outageLogged = true
    log?.warn({ component: opts.name, err: err.message }, 'redis connection error')
  })
  // Without an offline queue, commands issued while the first connection is still being
  // established would fail; give that first connect a bounded head start (shared by all callers;
  // rejects early on a connection error, so an absent Redis still fails fast).
  const firstConnect = once(redis, 'ready', { signal: AbortSignal.timeout(timeoutMs) }).then(
    () => {},
    () => {}
  )
  return {
    redis,
    async run (fn) {
      if (!everReady) await firstConnect
      try {
        return await fn(redis)
      } catch (err) {
        throw unavailable(err)
      }
    },
    async close () {
      await quit(redis)
    },
  }
}

export async function quit (redis: Redis): Promise<void> {
  try {
    if (redis.status === 'ready') await redis.quit()
  } catch {
    // fall through to a hard disconnect
  }
  redis.disconnect()
}
