/** Part 1a of the limits bench: the per-IP rate check itself, in this process, memory only and through a real Redis. */
import { setTimeout as sleep } from 'node:timers/promises'
import { RelayMetrics } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import type { RedisServer } from '@pos-relay/testing'
// not exported by @pos-relay/relay's index: the compiled module itself
import { RelayRateLimiter, type RateLimitSettings } from '../../../relay-image/dist/rate-limits.js'
import { readCpuSeconds } from '../lib/proc.ts'
import { callsDelta, commandCalls } from '../lib/redis-admin.ts'
import { summarize } from '../lib/stats.ts'
import { config, log } from './config.ts'
import type { CheckResult } from './results.ts'

const keyIp = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
// 'error': closing a Redis-backed limiter logs a warning about Redis going away
const quietLogger = createLogger({ name: 'bench-limits', level: 'error' })

function settings (points: number, redisUrl?: string): RateLimitSettings {
  return { redis_url: redisUrl, ip_connections_per_second: points, peer_reservations_per_minute: 0, peer_circuits_per_minute: 0, account_circuits_per_minute: 0 }
}

/** Part 1a: allow() in this process. */
export async function measureChecks (label: string, store: 'memory' | 'redis', points: number, keys: number, redis?: RedisServer): Promise<CheckResult> {
  const limiter = new RelayRateLimiter({ settings: settings(points, store === 'redis' ? redis!.url : undefined), metrics: new RelayMetrics(), logger: quietLogger })
  try {
    const client = (limiter as any).redis as { status: string, stream?: { write: (...a: unknown[]) => boolean } } | undefined
    if (store === 'redis') {
      const until = Date.now() + 10_000
      while (client?.status !== 'ready') {
        if (Date.now() > until) throw new Error(`limiter's Redis connection not ready (${client?.status})`)
        await sleep(20)
      }
    }
    // warm-up: JIT, Lua script loaded (first EVALSHA -> NOSCRIPT -> EVAL)
    for (let i = 0; i < 2000; i++) await limiter.allow('ip_connection', keyIp(100_000 + (i % keys)))
    await sleep(1100) // fresh 1 s windows
    let writes = 0
    const stream = client?.stream
    const origWrite = stream?.write
    if (stream != null && origWrite != null) {
      stream.write = function (this: unknown, ...a: unknown[]) { writes++; return origWrite.apply(this, a) }
    }
    const before = redis != null ? await commandCalls(redis.port) : {}
    const samples = new Array<number>(config.checks)
    let refused = 0
    const redisCpu0 = redis != null ? readCpuSeconds(redis.pid) : 0
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (let i = 0; i < config.checks; i++) {
      const key = keyIp(i % keys)
      const t = performance.now()
      const ok = await limiter.allow('ip_connection', key)
      samples[i] = (performance.now() - t) * 1000
      if (!ok) refused++
    }
    const wallMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const redisCpuS = redis != null ? readCpuSeconds(redis.pid) - redisCpu0 : 0
    if (stream != null && origWrite != null) stream.write = origWrite
    const res: CheckResult = { label, store, points, keys, n: config.checks, us: summarize(samples), wallUsPerCheck: wallMs * 1000 / config.checks, refused, clientCpuUsPerCheck: (cpu.user + cpu.system) / config.checks }
    if (redis != null) {
      const delta = callsDelta(before, await commandCalls(redis.port))
      res.redisCommandsPerCheck = Object.fromEntries(Object.entries(delta).map(([k, v]) => [k, v / config.checks]))
      res.redisCommandsTotalPerCheck = Object.values(delta).reduce((a, b) => a + b, 0) / config.checks
      res.socketWritesPerCheck = writes / config.checks
      res.redisCpuUsPerCheck = redisCpuS * 1e6 / config.checks
    }
    log(`${label}: mean ${res.us.mean.toFixed(1)} µs, p50 ${res.us.p50.toFixed(1)}, p99 ${res.us.p99.toFixed(1)} µs; refused ${refused}/${config.checks}; client CPU ${res.clientCpuUsPerCheck.toFixed(1)} µs/check` +
      (res.redisCommandsPerCheck != null ? `; Redis ${JSON.stringify(res.redisCommandsPerCheck)} per check, ${res.socketWritesPerCheck!.toFixed(3)} socket writes per check, redis-server CPU ${res.redisCpuUsPerCheck!.toFixed(1)} µs/check` : ''))
    return res
  } finally {
    await limiter.close()
  }
}
