/** Part 2 of the auth bench: ticket issuance through discovery, verification and signing in process, and metering's per-chunk cost. */
import { readFileSync } from 'node:fs'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createMemoryUsageSink, createRedisRevocationBus, parseTicketKeys, TicketError, TicketIssuer, ticketKeysUrl, TicketVerifier, UsageMeter } from '@pos-relay/accounts'
import type { RedisServer } from '@pos-relay/testing'
import { loadavg } from '../lib/machine.ts'
import { readCpuSeconds } from '../lib/proc.ts'
import { median } from '../lib/stats.ts'
import { config, log } from './config.ts'
import type { Discovery } from './discovery.ts'
import type { AuthResults, RatePass, RateResult } from './results.ts'

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
export async function measureTickets (redis: RedisServer, d: Discovery, results: AuthResults): Promise<void> {
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
