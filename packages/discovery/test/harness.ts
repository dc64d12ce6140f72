import { after, afterEach, before } from 'node:test'
import { startRedis, type RedisServer } from '@pos-relay/testing'

/**
 * One real Redis per test file (node --test runs each file in its own process), and cleanups
 * that run after every test, last registered first, so servers close before their stores.
 */
export interface RedisHarness {
  /** the file's Redis; started in a `before` hook, so use it inside tests */
  readonly redis: RedisServer
  onCleanup: (fn: () => Promise<unknown>) => void
}

let harness: RedisHarness | undefined

/**
 * Registers the hooks on the first call (call it at the top level of a module, never inside a
 * test) and returns the same harness on every call, so fixtures that share it share one Redis.
 */
export function useRedis (): RedisHarness {
  if (harness) return harness
  let redis: RedisServer | undefined
  const cleanups: (() => Promise<unknown>)[] = []
  before(async () => {
    redis = await startRedis()
  })
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  after(async () => {
    await redis?.stop()
  })
  harness = {
    get redis () {
      if (!redis) throw new Error('useRedis: Redis starts in a before hook; use it inside tests')
      return redis
    },
    onCleanup: (fn) => { cleanups.push(fn) },
  }
  return harness
}
