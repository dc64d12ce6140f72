/** Part 1 of the auth bench: relayed throughput with auth + metering on vs off (interleaved rounds), then the metering check. */
import { setTimeout as sleep } from 'node:timers/promises'
import { ticketKeysUrl } from '@pos-relay/accounts'
import type { RedisServer } from '@pos-relay/testing'
import { benchScript, spawnChild, type Child } from '../lib/children.ts'
import { metricValue, startCliRelay, type CliRelay } from '../lib/cli.ts'
import { loadavg } from '../lib/machine.ts'
import { readMem } from '../lib/proc.ts'
import { redisCommand } from '../lib/redis-admin.ts'
import { roundsSummary, transferRounds } from '../lib/rounds.ts'
import { errMsg } from '../lib/script.ts'
import type { TransferResult } from '../lib/transfer.ts'
import { config, log } from './config.ts'
import { usageOf, type Discovery } from './discovery.ts'
import { startPoolRelays, type PoolRelays } from './pool-relays.ts'
import type { AuthResults, RelayVariant } from './results.ts'

const MiB = 1024 * 1024

async function relayedBytes (relay: CliRelay): Promise<{ toDestination: number, toSource: number }> {
  const text = await relay.metrics()
  return {
    toDestination: metricValue(text, 'pos_relay_relayed_bytes_total', 'direction="to_destination"'),
    toSource: metricValue(text, 'pos_relay_relayed_bytes_total', 'direction="to_source"')
  }
}

/** Part 1: the relays, interleaved transfers, then the metering check. */
export async function measureThroughput (dir: string, redis: RedisServer, d: Discovery, results: AuthResults): Promise<void> {
  const variants: RelayVariant[] = []
  let pool: PoolRelays | undefined
  let peers: Child | undefined
  try {
    if (config.relays === 'pool') {
      pool = await startPoolRelays(dir, redis, d, { 'auth-off': undefined, 'auth-on': { required: true }, ...(config.control ? { 'auth-off-control': undefined } : {}) }, log)
      variants.push({ key: 'off', label: 'auth off', relay: pool.relays.get('auth-off')!, auth: false })
      variants.push({ key: 'on', label: 'auth + metering on', relay: pool.relays.get('auth-on')!, auth: true })
      if (config.control) variants.push({ key: 'control', label: 'auth off (control)', relay: pool.relays.get('auth-off-control')!, auth: false })
    } else {
      variants.push({ key: 'off', label: 'auth off', relay: await startCliRelay('relay-auth-off', dir, []), auth: false })
      variants.push({
        key: 'on',
        label: 'auth + metering on',
        relay: await startCliRelay('relay-auth-on', dir, ['--auth', '--ticket-keys-url', ticketKeysUrl(d.url)], {
          configure: (cfg) => { cfg.auth = { ...(cfg.auth ?? {}), redis_url: redis.url } }
        }),
        auth: true
      })
      if (config.control) variants.push({ key: 'control', label: 'auth off (control)', relay: await startCliRelay('relay-auth-control', dir, []), auth: false })
    }
    for (const v of variants) log(`${v.label}: relay pid ${v.relay.pid} at ${v.relay.addr} ${v.relay.flags.join(' ')}`)

    peers = await spawnChild(benchScript('peers-process.ts'), { name: 'peers' })
    const present = async (who: 'listener' | 'dialer', v: RelayVariant): Promise<number> =>
      (await peers!.call<{ presentMs: number }>('present', { relay: v.relay.addr, who, discoveryUrl: d.url, apiKey: d.apiKey })).presentMs
    const reserveMs = new Map<string, number>()
    for (const v of variants) {
      if (v.auth) log(`listener presented its ticket to ${v.label} in ${(await present('listener', v)).toFixed(1)} ms`)
      reserveMs.set(v.key, (await peers.call<{ reserveMs: number }>('listen', { relay: v.relay.addr })).reserveMs)
    }
    await sleep(1000)
    const on = variants.find((v) => v.auth)!
    const sent = { toDestination: 0, toSource: 0, transfers: 0 }
    const before = await relayedBytes(on.relay)
    const chunkBytes = config.chunkKiB * 1024
    const once = async (v: RelayVariant, bytes: number): Promise<TransferResult & { presentMs?: number }> => {
      const presentMs = v.auth ? await present('dialer', v) : undefined
      const timeoutMs = 30_000 + Math.ceil(bytes / MiB / 2) * 1000
      const r = await peers!.call<TransferResult>('transfer', { mode: 'relay', relay: v.relay.addr, bytes, chunkBytes, timeoutMs }, timeoutMs + 5000)
      if (v.auth) {
        sent.toDestination += r.bytes
        sent.toSource += String(r.received).length
        sent.transfers++
      }
      return { ...r, presentMs }
    }
    for (const v of variants) {
      try {
        const r = await once(v, Math.round(config.warmupMiB * MiB))
        log(`warm-up ${v.label}: ${r.mibPerSec.toFixed(1)} MiB/s`)
      } catch (err) {
        results.errors.push(`warm-up via ${v.label}: ${errMsg(err)}`)
      }
    }
    results.loadavg['after warm-up'] = loadavg()
    const bytes = Math.round(config.mib * MiB)
    const rounds = await transferRounds({
      relays: variants,
      rounds: config.rounds,
      what: 'round',
      log,
      errors: results.errors,
      transfer: async (v) => await once(v, bytes),
      describe: (r) => r.presentMs != null ? `, ticket presented in ${r.presentMs.toFixed(1)} ms` : '',
      afterRound: (round) => { results.loadavg[`after round ${round}`] = loadavg() }
    })
    const lastTransfer = performance.now()
    variants.forEach((v, i) => {
      const { transfers, failed } = rounds[i]!
      const { medianMiBps, relayCpuS, cpuSPerGiB } = roundsSummary(transfers, bytes)
      const t = transfers.map(({ round, relayCpuS, result: r }) => ({ round, mibPerSec: r.mibPerSec, relayCpuS, openMs: r.openMs, ms: r.ms, presentMs: r.presentMs }))
      results.relays.push({
        key: v.key,
        label: v.label,
        flags: v.relay.flags.join(' ').replace(/http:\/\/127\.0\.0\.1:\d+/, 'http://127.0.0.1:<port>') + (v.auth && config.relays === 'cli' ? ' (+ auth.redis_url in the config file)' : ''),
        transfers: t,
        failed,
        medianMiBps,
        cpuSPerGiB,
        relayBusy: relayCpuS / t.reduce((a, x) => a + x.ms / 1000, 0),
        reserveMs: reserveMs.get(v.key)!,
        rssAfterMiB: readMem(v.relay.pid).rssMiB
      })
    })
    await checkMetering({ relay: on.relay, before, sent, lastTransfer, redis, d, results })
  } finally {
    await peers?.stop()
    if (pool != null) await pool.stop()
    else await Promise.all(variants.map(async (v) => { await v.relay.stop() }))
  }
}

/** The metered usage must come to exactly what the relay counted (and the quota counter to their sum). */
async function checkMetering ({ relay: onRelay, before, sent, lastTransfer, redis, d, results }: {
  relay: CliRelay
  /** the relay's counters before the transfers */
  before: { toDestination: number, toSource: number }
  /** what went through the relay */
  sent: { toDestination: number, toSource: number, transfers: number }
  lastTransfer: number
  redis: RedisServer
  d: Discovery
  results: AuthResults
}): Promise<void> {
  const relay = await relayedBytes(onRelay)
  relay.toDestination -= before.toDestination
  relay.toSource -= before.toSource
  const month = new Date().toISOString().slice(0, 7)
  let usage = await usageOf(d)
  const deadline = performance.now() + 30_000
  while ((usage.bytes_to_destination !== relay.toDestination || usage.bytes_to_source !== relay.toSource) && performance.now() < deadline) {
    await sleep(250)
    usage = await usageOf(d)
  }
  const settledMs = performance.now() - lastTransfer
  const quotaCounter = Number(await redisCommand(redis.port, ['GET', `pos-relay:quota:${d.account}:${month}`]) || 0)
  const matches = usage.bytes_to_destination === relay.toDestination && usage.bytes_to_source === relay.toSource &&
    quotaCounter === relay.toDestination + relay.toSource && usage.circuits === sent.transfers
  results.metering = {
    account: d.account,
    payloadToDestination: sent.toDestination,
    payloadToSource: sent.toSource,
    transfers: sent.transfers,
    relayToDestination: relay.toDestination,
    relayToSource: relay.toSource,
    usage,
    quotaCounter,
    settledMs,
    matches
  }
  log(`metering: usage ${usage.bytes_to_destination} / ${usage.bytes_to_source} bytes, ${usage.circuits} circuits; relay counted ${relay.toDestination} / ${relay.toSource}; quota counter ${quotaCounter}; payload ${sent.toDestination} / ${sent.toSource} in ${sent.transfers} transfers: ${matches ? 'match' : 'MISMATCH'}`)
  if (!matches) results.errors.push('metered usage does not match what the relay counted (see "Metering check")')
}
