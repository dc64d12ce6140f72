/** Part 3 of the limits bench: stepped connect and half-open floods while a legitimate peer keeps reserving. */
import { setTimeout as sleep } from 'node:timers/promises'
import { multiaddr } from '@multiformats/multiaddr'
import type { RedisServer } from '@pos-relay/testing'
import { benchScript, spawnChild, type Child } from '../lib/children.ts'
import { metricValue, p2pConnectionCount, p2pSockets, socketCount, startCliRelay, type CliRelay } from '../lib/cli.ts'
import { loadavg } from '../lib/machine.ts'
import { readCpuSeconds, readMem } from '../lib/proc.ts'
import { summarize } from '../lib/stats.ts'
import { config, log } from './config.ts'
import { legitReservation, type LegitResult } from './hop.ts'
import { countsDelta, denialCounts, relayArgsForDoc } from './relays.ts'
import type { FloodResult, FloodStep, LimitsResults } from './results.ts'

async function relayConnections (relay: CliRelay): Promise<number> {
  return metricValue(await relay.metrics(), 'pos_relay_connections_active')
}

/** Waits until the relay's libp2p connections, TCP connections on its p2p port and socket fds are back to the baseline and its accept queue is empty; ms waited. */
async function settle (relay: CliRelay, baseConns: number, baseTcp: number, baseSockets: number, maxMs: number): Promise<{ ms: number, settled: boolean }> {
  const t0 = performance.now()
  while (performance.now() - t0 < maxMs) {
    const tcp = p2pSockets(relay.pid, relay.port)
    // +1: the keep-alive connection of the bench's own /metrics requests may come and go
    if (tcp.connections <= baseTcp && tcp.acceptQueue === 0 && socketCount(relay.pid) <= baseSockets + 1 && await relayConnections(relay) <= baseConns) return { ms: performance.now() - t0, settled: true }
    await sleep(50)
  }
  return { ms: performance.now() - t0, settled: false }
}

/** The legitimate peer: paced reservations until `done()`. */
async function legitLoop (relayAddr: string, done: () => boolean, maxN = Infinity): Promise<LegitResult[]> {
  const ma = multiaddr(relayAddr)
  const out: LegitResult[] = []
  let last = 0
  while (!done() && out.length < maxN) {
    const wait = last + config.legitSpacingMs - performance.now()
    if (wait > 0) await sleep(wait)
    if (done()) break
    last = performance.now()
    out.push(await legitReservation(ma, config.legitTimeoutMs))
  }
  return out
}

const failed = (r: LegitResult): boolean => r.status !== 100

/** Part 3: stepped floods against a relay with default limits + Redis. */
export async function measureFloods (dir: string, redis: RedisServer, results: LimitsResults): Promise<FloodResult> {
  let relay: CliRelay | undefined
  let flood: Child | undefined
  try {
    relay = await startCliRelay('relay-flood', dir, ['--redis', redis.url])
    flood = await spawnChild(benchScript('limits/flood-process.ts'), { name: 'flood' })
    log(`flood target: relay pid ${relay.pid} ${relay.addr} (${relayArgsForDoc(relay)}); flood generator pid ${flood.pid}`)
    await legitLoop(relay.addr, () => false, 3) // warm-up
    await sleep(1000)
    const quiet = await legitLoop(relay.addr, () => false, config.legitBaseline)
    await sleep(1000)
    const baseConns = await relayConnections(relay)
    const baseTcp = p2pConnectionCount(relay.pid, relay.port)
    const baseSockets = socketCount(relay.pid)
    const rssBefore = readMem(relay.pid).rssMiB
    const quietOk = quiet.filter((r) => !failed(r)).map((r) => r.ms)
    const baseline = { legit: summarize(quietOk), failures: quiet.length - quietOk.length, connections: baseConns, tcp: baseTcp, sockets: baseSockets, rssMiB: rssBefore }
    log(`baseline: legit reservation p50 ${baseline.legit.p50.toFixed(1)} ms, p99 ${baseline.legit.p99.toFixed(1)} ms (n=${quiet.length}, failures ${baseline.failures}); relay ${baseConns} libp2p connections, ${baseTcp} TCP connections on its port, ${baseSockets} sockets in all, RSS ${rssBefore.toFixed(0)} MiB`)

    const steps: FloodStep[] = []
    let halfOpenOffset = 0
    for (const series of ['connect', 'halfopen'] as const) {
      for (const rate of config.rates) {
        const durationMs = config.stepS * 1000
        const m0 = await denialCounts(relay)
        const c0 = readCpuSeconds(relay.pid)
        const f0 = readCpuSeconds(flood.pid)
        const t0 = performance.now()
        let floodDone = false
        const params = series === 'connect'
          ? { port: relay.port, mode: 'connect', rate, durationMs, block: 40, addresses: config.floodSources }
          : { port: relay.port, mode: 'halfopen', rate, durationMs, block: 41, offset: halfOpenOffset }
        const floodP = flood.call<Record<string, any>>('flood', params, durationMs + 30_000).finally(() => { floodDone = true })
        floodP.catch(() => {})
        // give the flood a head start of 300 ms so every legit attempt runs under it
        await sleep(300)
        const legit = await legitLoop(relay.addr, () => floodDone)
        const fr = await floodP
        const wallS = (performance.now() - t0) / 1000
        if (series === 'halfopen') halfOpenOffset += fr.attempted + fr.skippedFdCap
        const relayCpuS = readCpuSeconds(relay.pid) - c0
        const relayCpuBusy = relayCpuS / wallS
        const floodCpuBusy = (readCpuSeconds(flood.pid) - f0) / wallS
        const denials = countsDelta(m0, await denialCounts(relay))
        const { connections: relayTcpAtEnd, acceptQueue: acceptQueueAtEnd } = p2pSockets(relay.pid, relay.port)
        const relayConnsAtEnd = await relayConnections(relay)
        const relayRssMiB = readMem(relay.pid).rssMiB
        const la = loadavg()
        const st = await settle(relay, baseConns, baseTcp, baseSockets, config.settleMaxMs)
        const ok = legit.filter((r) => !failed(r)).map((r) => r.ms)
        const errs = [...new Set(legit.filter(failed).map((r) => r.error ?? `status ${r.status}`))]
        const s = summarize(ok)
        const lg = { n: legit.length, p50: s.p50, p99: s.p99, max: s.max, failures: legit.length - ok.length, errors: errs }
        const passed = lg.n > 0 && lg.failures === 0 && lg.p99 < config.legitP99LimitMs
        steps.push({ series, rate, flood: fr, legit: lg, relayCpuBusy, relayCpuS, floodCpuBusy, denials, relayRssMiB, relayTcpAtEnd, acceptQueueAtEnd, relayConnsAtEnd, settleMs: st.ms, settled: st.settled, loadavg: la, passed })
        log(`${series} ${rate}/s: achieved ${fr.connectedPerSec.toFixed(0)}/s connected (${fr.attemptedPerSec.toFixed(0)}/s attempted, ${fr.connectTimeouts} connect timeouts, errors ${JSON.stringify(fr.errors)}); ` +
          `legit n=${lg.n} p50 ${lg.p50?.toFixed(1)} p99 ${lg.p99?.toFixed(1)} ms, failures ${lg.failures}${errs.length > 0 ? ` (${errs.join('; ')})` : ''}; relay CPU ${Math.round(relayCpuBusy * 100)} %, flood CPU ${Math.round(floodCpuBusy * 100)} %; ` +
          `denials ${JSON.stringify(denials)}; relay ${relayConnsAtEnd} libp2p conns / ${relayTcpAtEnd} TCP conns / ${acceptQueueAtEnd} in accept queue at end, RSS ${relayRssMiB.toFixed(0)} MiB; settled ${st.settled ? 'in' : 'NOT after'} ${st.ms.toFixed(0)} ms; load ${la.join(' ')}`)
        // fresh 1 s windows for the next step
        await sleep(1200)
      }
    }
    await sleep(1000)
    const final = await settle(relay, baseConns, baseTcp, baseSockets, config.settleMaxMs)
    const mem = readMem(relay.pid)
    const after = { connections: await relayConnections(relay), tcp: p2pConnectionCount(relay.pid, relay.port), sockets: socketCount(relay.pid), rssMiB: mem.rssMiB, hwmMiB: mem.hwmMiB, settled: final.settled, settleMs: final.ms }
    log(`after the floods: relay ${after.connections} libp2p connections (baseline ${baseConns}), ${after.tcp} TCP connections on its port (baseline ${baseTcp}), ${after.sockets} sockets in all (baseline ${baseSockets}), RSS ${rssBefore.toFixed(0)} -> ${after.rssMiB.toFixed(0)} MiB (peak ${after.hwmMiB.toFixed(0)} MiB)`)
    const largest = Object.fromEntries((['connect', 'halfopen'] as const).map((series) => {
      const ss = steps.filter((s) => s.series === series).sort((x, y) => x.rate - y.rate)
      let rate: number | null = null
      for (const s of ss) { if (!s.passed) break; rate = s.rate }
      const passing = ss.filter((s) => s.passed).map((s) => s.rate)
      return [series, { rate, highestPassing: passing.length > 0 ? Math.max(...passing) : null }]
    })) as FloodResult['largest']
    log(`largest rate absorbed: connect ${largest.connect.rate ?? 'none'}/s (highest passing ${largest.connect.highestPassing ?? 'none'}), half-open ${largest.halfopen.rate ?? 'none'}/s (highest passing ${largest.halfopen.highestPassing ?? 'none'})`)
    results.loadavg['after floods'] = loadavg()
    return { relayArgs: relayArgsForDoc(relay), baseline, steps, after, largest }
  } finally {
    await flood?.stop()
    await relay?.stop()
  }
}
