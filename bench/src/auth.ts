/**
 * `npm run bench:auth` (or `npx node bench/src/auth.ts` after `npx tsc -b`):
 * what accounts cost the relay, in one run (about 4 minutes), written as
 * the `auth` section of docs/benchmarks.md.
 *
 * Set-up as a user sets it up, everything through the CLI: `pos-relay keys
 * generate`, `pos-relay discovery --redis … --ticket-keys-file …` (with an
 * admin secret), `pos-relay accounts create --tier pro`, and relays from
 * `pos-relay init` + `pos-relay run`. One real Redis (`startRedis()`).
 *
 * 1. Relayed throughput, auth + metering on vs off: the same dialer and
 *    listener (src/peers-process.ts) through
 *    - "auth off": `pos-relay run` with default limits, no Redis;
 *    - "auth + metering on": the same plus `--auth --ticket-keys-url
 *      <discovery>/api/p2p/ticket-keys` and `auth.redis_url` in the config
 *      file (metering, quotas, revocations, fleet-wide reservation counts in
 *      Redis), the rate limits left in memory as on the other relay so that
 *      only auth and metering differ;
 *    - "auth off (control)": a second relay identical to the first, an A/A
 *      comparison that shows how much two identical relays differ in this
 *      run (the noise floor), unless AUTH_CONTROL=0.
 *    Both peers get tickets from discovery with the account's API key (the
 *    client SDK's TicketClient) and present them to the auth relay. Rounds
 *    of one transfer per relay, the order rotating; median MiB/s and relay
 *    CPU seconds per GiB; the cost of auth in % on both, per round (paired)
 *    and overall. Then the metered usage (GET /api/admin/usage, the Redis
 *    quota counter) is checked against the relay's own byte counters and
 *    the payload sent.
 * 2. Tickets: N distinct peers get a ticket each from discovery (issuance
 *    rate, discovery and Redis CPU per ticket), then in this process the
 *    relay's verifier (TicketVerifier with the discovery's JWKS URL, as the
 *    relay builds it) checks them in passes: valid tickets, the same with a
 *    broken signature (rejection path), and verify + the Redis revocation
 *    check (what the relay's TicketGate does per presented ticket, minus
 *    the stream I/O); CPU time from process.cpuUsage() -> verifications per
 *    CPU second, i.e. per core. Also TicketIssuer.issue() in process.
 *
 * Bounded in count and time; every child process (discovery, relays, peers,
 * Redis) is stopped at the end, on error and on Ctrl-C, and exits by itself
 * when this process goes away. Knobs: AUTH_* environment variables, see
 * `config` below.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createMemoryUsageSink, createRedisRevocationBus, parseTicketKeys, TicketError, TicketIssuer, ticketKeysUrl, TicketVerifier, UsageMeter } from '@pos-relay/accounts'
import { startRedis, type RedisServer } from '@pos-relay/testing'
import { benchScript, killAllChildren, spawnChild, type Child } from './lib/children.ts'
import { envNumber } from './lib/env.ts'
import { loadavg, machineInfo, type LoadAvg, type MachineInfo } from './lib/machine.ts'
import { readCpuSeconds, readMem } from './lib/proc.ts'
import { BENCH_DOC, writeSection } from './lib/report.ts'
import { attempter, benchLog, errMsg, runScript } from './lib/script.ts'
import { median } from './lib/stats.ts'
import type { TransferResult } from './lib/transfer.ts'
import { authSection, renderAuthReport } from './auth/report.ts'
import { killAllRelays, metricValue, runCli, startCliRelay, startCliServer, type CliRelay, type CliServer } from './lib/cli.ts'
import { redisCommand } from './lib/redis-admin.ts'

const MiB = 1024 * 1024
const PARTS = ['throughput', 'tickets'] as const

export const config = {
  /** MiB per timed transfer */
  mib: envNumber('AUTH_MIB', 128),
  /** rounds: one timed transfer per relay each */
  rounds: Math.round(envNumber('AUTH_ROUNDS', 12)),
  /** untimed transfer per relay before the rounds (JIT, first circuit) */
  warmupMiB: envNumber('AUTH_WARMUP_MIB', 32),
  chunkKiB: envNumber('AUTH_CHUNK_KIB', 64),
  /** 0: no second auth-off relay (A/A control) */
  control: process.env.AUTH_CONTROL !== '0',
  /** distinct peers (and tickets) of part 2 */
  tickets: Math.round(envNumber('AUTH_TICKETS', 2000)),
  /** passes over the tickets per verification variant */
  passes: Math.round(envNumber('AUTH_PASSES', 5)),
  /** the issue's goal: auth and metering cost at most this many % */
  goalPct: envNumber('AUTH_GOAL_PCT', 5),
  /** the account's tier (default tiers: pro = 4 GiB per circuit, 1 TiB a month, so quotas are checked) */
  tier: process.env.AUTH_TIER ?? 'pro',
  parts: new Set((process.env.AUTH_ONLY ?? PARTS.join(',')).split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    if (!(PARTS as readonly string[]).includes(x)) throw new Error(`AUTH_ONLY: unknown part ${x} (parts: ${PARTS.join(', ')})`)
    return x
  })),
  /** the document whose `auth` section gets the report; '-' = nowhere; a partial run (AUTH_ONLY) writes it only when set */
  out: process.env.AUTH_OUT ?? (process.env.AUTH_ONLY != null ? '-' : BENCH_DOC),
  json: process.env.AUTH_JSON ?? '',
  deadlineS: envNumber('AUTH_DEADLINE_S', 900)
}

export interface RelayVariant { key: 'off' | 'on' | 'control', label: string, relay: CliRelay, auth: boolean }

export interface AuthTransfer { round: number, mibPerSec: number, relayCpuS: number, openMs: number, ms: number, presentMs?: number }

export interface VariantResult {
  key: RelayVariant['key']
  label: string
  flags: string
  transfers: AuthTransfer[]
  failed: number
  medianMiBps: number
  cpuSPerGiB: number
  /** relay CPU seconds per transfer second, over the timed transfers */
  relayBusy: number
  reserveMs: number
  rssAfterMiB: number
}

export interface MeteringCheck {
  account: string
  /** payload the dialer sent through the auth relay (warm-up included), bytes */
  payloadToDestination: number
  /** the listener's replies (byte counts as text) */
  payloadToSource: number
  transfers: number
  /** the relay's pos_relay_relayed_bytes_total */
  relayToDestination: number
  relayToSource: number
  /** GET /api/admin/usage, summed over the hours */
  usage: { bytes_to_destination: number, bytes_to_source: number, circuits: number, circuit_seconds: number, reservation_seconds: number }
  /** the fleet quota counter pos-relay:quota:<account>:<month> */
  quotaCounter: number
  /** ms from the last transfer until the usage equalled the relay's counters */
  settledMs: number
  matches: boolean
}

export interface RatePass { n: number, cpuS: number, wallS: number }
export interface RateResult {
  label: string
  n: number
  passes: RatePass[]
  /** median over passes of n / cpuS */
  perCpuSecond: number
  /** median over passes of n / wallS (one at a time) */
  perWallSecond: number
  /** µs of CPU per operation (median pass) */
  cpuUs: number
  /** wrong outcomes (a valid ticket refused, a broken one accepted or refused for another reason) */
  wrong: number
}

export interface IssuanceResult {
  n: number
  wallS: number
  perWallSecond: number
  /** discovery process CPU per ticket, µs */
  discoveryCpuUs: number
  /** redis-server CPU per ticket, µs */
  redisCpuUs: number
  /** discovery CPU seconds for all of them */
  discoveryCpuS: number
  ticketBytes: number
}

export interface AuthResults {
  machine: MachineInfo
  config: typeof config
  loadavg: Record<string, LoadAvg>
  relays: VariantResult[]
  metering?: MeteringCheck
  issuance?: IssuanceResult
  issueInProcess?: RateResult
  /** UsageMeter.add() per relayed chunk, the only per-byte work auth adds (in process, no flush) */
  meterAdd?: RateResult
  verify: RateResult[]
  errors: string[]
  durationS: number
}

const log = benchLog('auth')

export interface Discovery { server: CliServer, url: string, adminSecret: string, apiKey: string, account: string, keysFile: string }

/** Discovery with accounts on and Redis, and one account with an API key: all through the CLI. */
async function startDiscovery (dir: string, redis: RedisServer): Promise<Discovery> {
  const keysFile = join(dir, 'ticket-keys.json')
  await runCli(['keys', 'generate', '--out', keysFile])
  const adminSecret = `bench-admin-${process.pid}-${Date.now()}`
  const server = await startCliServer('discovery', ['discovery', '--host', '127.0.0.1', '--port', '0', '--redis', redis.url, '--ticket-keys-file', keysFile, '--log-level', 'warn'],
    'discovery_ready', { env: { P2P_SECRET: 'bench-p2p', ADMIN_SECRET: adminSecret } })
  const url: string = server.ready.url
  const created = JSON.parse(await runCli(['accounts', 'create', '--name', 'bench', '--tier', config.tier], { API_URL: url, ADMIN_SECRET: adminSecret }))
  return { server, url, adminSecret, apiKey: created.api_key, account: created.account.id, keysFile }
}

async function relayedBytes (relay: CliRelay): Promise<{ toDestination: number, toSource: number }> {
  const text = await relay.metrics()
  return {
    toDestination: metricValue(text, 'pos_relay_relayed_bytes_total', 'direction="to_destination"'),
    toSource: metricValue(text, 'pos_relay_relayed_bytes_total', 'direction="to_source"')
  }
}

async function usageOf (d: Discovery): Promise<MeteringCheck['usage']> {
  const res = await fetch(`${d.url}/api/admin/usage?account=${encodeURIComponent(d.account)}&format=json`, { headers: { authorization: `Bearer ${d.adminSecret}` }, signal: AbortSignal.timeout(10_000) })
  if (!res.ok) throw new Error(`GET /api/admin/usage: ${res.status} ${await res.text()}`)
  const rows = await res.json() as Array<Record<string, number | string>>
  const sum = (k: string): number => rows.reduce((a, r) => a + Number(r[k] ?? 0), 0)
  return { bytes_to_destination: sum('bytes_to_destination'), bytes_to_source: sum('bytes_to_source'), circuits: sum('circuits'), circuit_seconds: sum('circuit_seconds'), reservation_seconds: sum('reservation_seconds') }
}

/** Part 1: the relays, interleaved transfers, then the metering check. */
async function measureThroughput (dir: string, redis: RedisServer, d: Discovery, results: AuthResults): Promise<void> {
  const variants: RelayVariant[] = []
  let peers: Child | undefined
  try {
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
    const rows = new Map<string, AuthTransfer[]>(variants.map((v) => [v.key, []]))
    const failed = new Map<string, number>(variants.map((v) => [v.key, 0]))
    for (let round = 0; round < config.rounds; round++) {
      for (let j = 0; j < variants.length; j++) {
        const v = variants[(j + round) % variants.length]!
        const c0 = readCpuSeconds(v.relay.pid)
        try {
          const r = await once(v, bytes)
          const relayCpuS = readCpuSeconds(v.relay.pid) - c0
          rows.get(v.key)!.push({ round: round + 1, mibPerSec: r.mibPerSec, relayCpuS, openMs: r.openMs, ms: r.ms, presentMs: r.presentMs })
          log(`round ${round + 1}/${config.rounds} ${v.label}: ${r.mibPerSec.toFixed(1)} MiB/s, relay CPU ${relayCpuS.toFixed(2)} s${r.presentMs != null ? `, ticket presented in ${r.presentMs.toFixed(1)} ms` : ''}`)
        } catch (err) {
          failed.set(v.key, failed.get(v.key)! + 1)
          log(`round ${round + 1} ${v.label} FAILED: ${errMsg(err)}\n--- ${v.relay.name} stderr (tail) ---\n${v.relay.stderrTail()}`)
          results.errors.push(`round ${round + 1} via ${v.label}: ${errMsg(err)}`)
        }
      }
      results.loadavg[`after round ${round + 1}`] = loadavg()
    }
    const lastTransfer = performance.now()
    for (const v of variants) {
      const t = rows.get(v.key)!
      const cpu = t.reduce((a, x) => a + x.relayCpuS, 0)
      const wall = t.reduce((a, x) => a + x.ms / 1000, 0)
      results.relays.push({
        key: v.key,
        label: v.label,
        flags: v.relay.flags.join(' ').replace(/http:\/\/127\.0\.0\.1:\d+/, 'http://127.0.0.1:<port>') + (v.auth ? ' (+ auth.redis_url in the config file)' : ''),
        transfers: t,
        failed: failed.get(v.key)!,
        medianMiBps: median(t.map((x) => x.mibPerSec)),
        cpuSPerGiB: cpu / (t.length * bytes / 1024 ** 3),
        relayBusy: cpu / wall,
        reserveMs: reserveMs.get(v.key)!,
        rssAfterMiB: readMem(v.relay.pid).rssMiB
      })
    }

    // the metered usage must come to exactly what the relay counted
    const relay = await relayedBytes(on.relay)
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
  } finally {
    await peers?.stop()
    await Promise.all(variants.map(async (v) => { await v.relay.stop() }))
  }
}

/** Runs `fn` over `n` items `passes` times; rates from CPU (process.cpuUsage: all threads) and wall time per pass. */
async function ratePasses (n: number, fn: (i: number) => Promise<boolean>): Promise<RatePass & { wrong: number }> {
  let wrong = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) if (!(await fn(i))) wrong++
  const wallS = (performance.now() - t0) / 1000
  const c = process.cpuUsage(c0)
  return { n, cpuS: (c.user + c.system) / 1e6, wallS, wrong }
}

function rateResult (label: string, passes: Array<RatePass & { wrong: number }>): RateResult {
  const perCpu = median(passes.map((p) => p.n / p.cpuS))
  return {
    label,
    n: passes[0]?.n ?? 0,
    passes: passes.map(({ n, cpuS, wallS }) => ({ n, cpuS, wallS })),
    perCpuSecond: perCpu,
    perWallSecond: median(passes.map((p) => p.n / p.wallS)),
    cpuUs: 1e6 / perCpu,
    wrong: passes.reduce((a, p) => a + p.wrong, 0)
  }
}

/** A copy of `token` whose signature's first character differs: still 64 bytes of base64url, no longer valid. */
function breakSignature (token: string): string {
  const i = token.lastIndexOf('.') + 1
  return token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1)
}

/** Part 2: issuance through discovery, then verification in this process. */
async function measureTickets (redis: RedisServer, d: Discovery, results: AuthResults): Promise<void> {
  const n = config.tickets
  log(`generating ${n} peer ids`)
  const peers = await Promise.all(Array.from({ length: n }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  const issue = async (peer: string): Promise<string> => {
    const res = await fetch(`${d.url}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${d.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: peer }), signal: AbortSignal.timeout(10_000) })
    if (res.status !== 200) throw new Error(`POST /api/p2p/tickets: ${res.status} ${await res.text()}`)
    return (await res.json() as { ticket: string }).ticket
  }
  for (let i = 0; i < 50; i++) await issue(peers[i]!) // warm-up (keep-alive connection, JIT)
  const d0 = readCpuSeconds(d.server.pid)
  const r0 = readCpuSeconds(redis.pid)
  const t0 = performance.now()
  const tokens: string[] = []
  for (const peer of peers) tokens.push(await issue(peer))
  const wallS = (performance.now() - t0) / 1000
  const discoveryCpuS = readCpuSeconds(d.server.pid) - d0
  results.issuance = {
    n,
    wallS,
    perWallSecond: n / wallS,
    discoveryCpuS,
    discoveryCpuUs: discoveryCpuS * 1e6 / n,
    redisCpuUs: (readCpuSeconds(redis.pid) - r0) * 1e6 / n,
    ticketBytes: median(tokens.map((t) => t.length))
  }
  log(`issuance through discovery: ${results.issuance.perWallSecond.toFixed(0)} tickets/s sequential, discovery CPU ${results.issuance.discoveryCpuUs.toFixed(0)} µs/ticket, redis-server ${results.issuance.redisCpuUs.toFixed(0)} µs/ticket`)
  results.loadavg['after issuance'] = loadavg()

  // as the relay builds it (relay-image/src/relay.ts accountServicesFromConfig)
  const verifier = new TicketVerifier({ jwksUrl: ticketKeysUrl(d.url) })
  await verifier.refresh()
  const bus = createRedisRevocationBus({ redisUrl: redis.url })
  try {
    const broken = tokens.map(breakSignature)
    const valid = async (i: number): Promise<boolean> => (await verifier.verify(tokens[i]!, peers[i]!)).sub === peers[i]
    const rejected = async (i: number): Promise<boolean> => {
      try { await verifier.verify(broken[i]!, peers[i]!); return false } catch (err) { return err instanceof TicketError && err.reason === 'bad_signature' }
    }
    const gate = async (i: number): Promise<boolean> => {
      const claims = await verifier.verify(tokens[i]!, peers[i]!)
      return !(await bus.isRevoked(claims))
    }
    const variants: Array<[string, (i: number) => Promise<boolean>]> = [
      ['valid ticket: TicketVerifier.verify', valid],
      ['broken signature: TicketVerifier.verify (rejected, bad_signature)', rejected],
      ['valid ticket: verify + revocation check in Redis (the relay\'s TicketGate path, without the stream)', gate]
    ]
    // warm-up: JIT, the bus's Redis connection
    for (const [, fn] of variants) for (let i = 0; i < Math.min(500, n); i++) await fn(i).catch(() => false)
    const passes = new Map<string, Array<RatePass & { wrong: number }>>(variants.map(([l]) => [l, []]))
    for (let p = 0; p < config.passes; p++) {
      for (let j = 0; j < variants.length; j++) {
        const [label, fn] = variants[(j + p) % variants.length]!
        passes.get(label)!.push(await ratePasses(n, async (i) => await fn(i).catch(() => false)))
      }
    }
    for (const [label] of variants) {
      const r = rateResult(label, passes.get(label)!)
      results.verify.push(r)
      log(`${label}: ${r.perCpuSecond.toFixed(0)} per CPU second (${r.cpuUs.toFixed(1)} µs CPU each), ${r.perWallSecond.toFixed(0)}/s one at a time; wrong outcomes ${r.wrong}`)
      if (r.wrong > 0) results.errors.push(`${label}: ${r.wrong} wrong outcomes`)
    }
  } finally {
    await bus.close()
  }

  // signing alone, in process, with the discovery's key
  const issuer = await TicketIssuer.create({ keys: parseTicketKeys(JSON.parse(readFileSync(d.keysFile, 'utf8'))) })
  for (let i = 0; i < 200; i++) await issuer.issue({ account: d.account, tier: config.tier, peer: peers[i % n]! })
  const issuePasses: Array<RatePass & { wrong: number }> = []
  for (let p = 0; p < config.passes; p++) issuePasses.push(await ratePasses(n, async (i) => (await issuer.issue({ account: d.account, tier: config.tier, peer: peers[i]! })).ticket.length > 0))
  results.issueInProcess = rateResult('TicketIssuer.issue (signing), in process', issuePasses)
  log(`TicketIssuer.issue in process: ${results.issueInProcess.perCpuSecond.toFixed(0)} per CPU second`)

  // the per-chunk work of metering on the relay's data path: one add() per chunk each way
  const meter = new UsageMeter({ sink: createMemoryUsageSink(), relayId: 'bench' })
  const adds = 200_000
  for (let i = 0; i < 20_000; i++) meter.add(d.account, { bytes_to_destination: 65_536 })
  const addPasses: Array<RatePass & { wrong: number }> = []
  for (let p = 0; p < config.passes; p++) addPasses.push(await ratePasses(adds, async () => { meter.add(d.account, { bytes_to_destination: 65_536 }); return true }))
  results.meterAdd = rateResult('UsageMeter.add (per relayed chunk), in process', addPasses)
  log(`UsageMeter.add: ${results.meterAdd.cpuUs.toFixed(2)} µs CPU per call (with the loop's await)`)
}

async function main (): Promise<void> {
  const started = performance.now()
  const results: AuthResults = { machine: machineInfo(), config, loadavg: { start: loadavg() }, relays: [], verify: [], errors: [], durationS: 0 }
  log(`load average at start: ${results.loadavg.start!.join(' ')} (${results.machine.cores} cores)`)
  const dir = mkdtempSync(join(os.tmpdir(), 'pos-relay-bench-auth-'))
  let redis: RedisServer | undefined
  let discovery: Discovery | undefined
  const attempt = attempter(results.errors, log)
  try {
    redis = await startRedis()
    discovery = await startDiscovery(dir, redis)
    log(`redis-server ${redis.url} (pid ${redis.pid}); discovery ${discovery.url} (pid ${discovery.server.pid}); account ${discovery.account} (${config.tier})`)
    if (config.parts.has('throughput')) await attempt('throughput', async () => { await measureThroughput(dir, redis!, discovery!, results) })
    results.loadavg['after part 1'] = loadavg()
    if (config.parts.has('tickets')) await attempt('tickets', async () => { await measureTickets(redis!, discovery!, results) })
  } finally {
    await discovery?.server.stop()
    await redis?.stop().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  results.loadavg.end = loadavg()
  results.durationS = (performance.now() - started) / 1000
  const report = renderAuthReport(results)
  process.stdout.write(report)
  log(writeSection(config.out, authSection(results, report)))
  if (config.json !== '') writeFileSync(config.json, JSON.stringify(results, (_k, v) => v instanceof Set ? [...v] : v, 2) + '\n')
  if (results.errors.length > 0) process.exitCode = 1
}

await runScript('auth', { deadlineS: config.deadlineS, cleanup: () => { killAllRelays(); killAllChildren() }, log }, main)
