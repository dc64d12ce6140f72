import { afterEach } from 'node:test'
import { useRedis as useRedisServer, type RedisServer } from '@pos-relay/testing'

/**
 * One real Redis per test file (node --test runs each file in its own process), and cleanups
 * that run after every test, last registered first, so servers close before their stores.
 */
export interface RedisHarness {
  /** the file's Redis (@pos-relay/testing's useRedis): use it inside tests */
  readonly redis: RedisServer
  onCleanup: (fn: () => Promise<unknown>) => void
}

let harness: RedisHarness | undefined

/**
 * Registers the hooks on the first call (call it at the top level of a module, never inside a
 * test) and returns the same harness on every call, so fixtures that share it share one Redis.
 */
export function useRedisHarness (): RedisHarness {
  if (harness) return harness
  const cleanups: (() => Promise<unknown>)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  harness = { redis: useRedisServer(), onCleanup: (fn) => { cleanups.push(fn) } }
  return harness
}
