/**
 * `npx node bench/src/limits.ts`: what the relay's limits cost and what they
 * buy, in one run (about 3 minutes), written as the `limits` section of
 * docs/benchmarks.md.
 *
 * 1. Cost per new connection of the per-IP rate check:
 *    a. RelayRateLimiter.allow('ip_connection', ip) in this process, memory
 *       only and shared through a real Redis (µs per check, Redis commands
 *       per check from INFO commandstats deltas, socket writes per check);
 *    b. end to end: sequential new connections (TCP + Noise + Yamux, plain
 *       js-libp2p dial, then hang up) against a relay with limits off and one
 *       with limits on (defaults + --redis, per-IP rate raised so nothing is
 *       refused), interleaved in blocks.
 * 2. Relayed throughput through the same two relays: same dialer + listener
 *    (src/peers-process.ts), interleaved transfers, median MiB/s and relay
 *    CPU seconds per GiB.
 * 3. Floods against a relay with limits on (defaults + --redis): stepped
 *    connect floods (open and drop, rotating source addresses 127.40.x.y) and
 *    half-open floods (idle connections, each from its own address
 *    127.41.x.y+), while a legitimate peer (fresh node per attempt) keeps
 *    reserving; per step the achieved flood rate and the legitimate peer's
 *    p50 / p99 / failures; relay RSS and connections before / after.
 *
 * Everything on loopback, bounded in count and time; child processes (relays,
 * Redis, peers, flood generator) are stopped at the end, on error, on Ctrl-C,
 * and exit by themselves when this process goes away (Redis excepted: it is
 * killed from an exit handler). Knobs: LIMITS_* environment variables, see
 * limits/config.ts. Each part is a module of limits/ (checks, connections,
 * throughput, floods); the report is limits/report.ts.
 */
import { newConfig, parseConfig } from '@pos-relay/relay'
import { runWithRedis } from './lib/bench-run.ts'
import { killAllChildren } from './lib/children.ts'
import { killAllRelays, startCliRelay, type CliRelay } from './lib/cli.ts'
import { loadavg, packageVersion } from './lib/machine.ts'
import { redisCommand } from './lib/redis-admin.ts'
import { runScript } from './lib/script.ts'
import { measureChecks } from './limits/checks.ts'
import { config, log } from './limits/config.ts'
import { measureConnections } from './limits/connections.ts'
import { measureFloods } from './limits/floods.ts'
import { RELAY_OFF, relayArgsForDoc, relayOn } from './limits/relays.ts'
import { limitsSection, renderLimitsReport } from './limits/report.ts'
import type { LimitsResults } from './limits/results.ts'
import { measureThroughput } from './limits/throughput.ts'

async function main (): Promise<void> {
  const defaultConfig = parseConfig(await newConfig({ p2p_secret: 'bench' }))
  const defaults = { limits: { ...defaultConfig.limits }, rate_limits: { ...defaultConfig.rate_limits } }
  const rateLimiterVersion = packageVersion('rate-limiter-flexible')
  await runWithRedis<LimitsResults>({
    name: 'limits',
    log,
    results: (base) => ({ ...base, config, checks: [], conns: [], throughput: [], defaults, rateLimiterVersion }),
    render: renderLimitsReport,
    section: limitsSection,
    out: config.out,
    json: config.json,
    body: async ({ dir, redis, attempt }, results) => {
      log(`redis-server at ${redis.url} (pid ${redis.pid})`)

      // 1a. the check itself, in process
      if (config.parts.has('checks')) {
        await attempt('allow() in process', async () => {
          results.checks.push(await measureChecks('memory, allowed', 'memory', 100_000, config.checkKeys))
          results.checks.push(await measureChecks('Redis, allowed', 'redis', 100_000, config.checkKeys, redis))
          results.checks.push(await measureChecks('memory, refused (limit 1/s, 10 keys)', 'memory', 1, 10))
          results.checks.push(await measureChecks('Redis, refused (limit 1/s, 10 keys)', 'redis', 1, 10, redis))
        })
      }
      results.loadavg['after part 1a'] = loadavg()

      // 1b + 2: the same two relays
      if (config.parts.has('conns') || config.parts.has('throughput')) {
        await attempt('relays off / on', async () => {
          await redisCommand(redis.port, ['FLUSHALL'])
          const relays: Array<{ label: string, relay: CliRelay }> = []
          try {
            relays.push({ label: 'limits off', relay: await startCliRelay('relay-off', dir, RELAY_OFF) })
            relays.push({ label: 'limits on (+ Redis)', relay: await startCliRelay('relay-on', dir, relayOn(redis.url)) })
            for (const { label, relay } of relays) log(`${label}: relay pid ${relay.pid} at ${relay.addr}: ${relayArgsForDoc(relay)}`)
            if (config.parts.has('conns')) await attempt('new connections', async () => { results.conns.push(...await measureConnections(relays, redis)) })
            results.loadavg['after part 1b'] = loadavg()
            if (config.parts.has('throughput')) await attempt('relayed throughput', async () => { results.throughput.push(...await measureThroughput(relays, results.errors)) })
            results.loadavg['after part 2'] = loadavg()
          } finally {
            await Promise.all(relays.map(async ({ relay }) => { await relay.stop() }))
          }
        })
      }

      // 3. floods
      if (config.parts.has('floods')) {
        await attempt('floods', async () => {
          await redisCommand(redis.port, ['FLUSHALL'])
          results.flood = await measureFloods(dir, redis, results)
        })
      }
    }
  })
}

await runScript('limits', { deadlineS: config.deadlineS, cleanup: () => { killAllRelays(); killAllChildren() }, log }, main)
