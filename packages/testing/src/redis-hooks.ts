import { after, before } from 'node:test'
import { startRedis, type RedisServer, type StartRedisOptions } from './redis.js'

/**
 * A real Redis for the tests of the current suite (or file, at the top level): started in a
 * `before` hook, stopped in an `after` hook. Call it where hooks may be declared (a describe body
 * or a file's top level), never inside a test. The handle is usable inside tests and hooks that
 * run after the start; reading it earlier throws. Clients of it should be closed by `after` hooks
 * of a nested suite, or by the suite's own `after` hooks declared before this call (hooks run in
 * the order they are declared).
 */
export function useRedis (opts: StartRedisOptions = {}): RedisServer {
  let server: RedisServer | undefined
  const current = (): RedisServer => {
    if (server == null) throw new Error('useRedis: Redis starts in a before hook; use it inside tests')
    return server
  }
  before(async () => {
    server = await startRedis(opts)
  })
  after(async () => {
    await server?.stop()
  })
  return {
    get url () { return current().url },
    get port () { return current().port },
    get pid () { return current().pid },
    stop: async () => { await current().stop() },
    kill: async () => { await current().kill() },
    restart: async () => { await current().restart() }
  }
}
