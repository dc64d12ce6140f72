/**
 * npm run bench:failover (issue 18): how long a JS listener is unreachable after the relay it lives
 * on dies (SIGKILL) or drains (SIGTERM), and how many discovery requests one relay failure costs.
 *
 * 1. Measured: real Redis, `pos-relay discovery --ttl 30`, three `pos-relay run` relays, the JS
 *    file-transfer example listening with --relay-count 1 (the client's default 60 s poll). Per run:
 *    signal the relay the listener lives on, then time (a) until the listener prints `reserved` for
 *    another relay, (b) until a dialer made after the failure (the SDK, in this process, with the
 *    list discovery gives it then: after a SIGKILL it still names the dead relay) has sent a file
 *    through the example's protocol and got its hash back. The relay is then started again and the
 *    listener moves back before the next run.
 * 2. Modelled: 1,000 clients, one relay failure (bench/src/rendezvous/failover-sim.ts, the SDK's
 *    ranking and timings): discovery requests per client, and their peak rate.
 *
 * Flags: --runs 10 --clients 1000 --relays 50 (BENCH_OUT=- prints only).
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createRelayPeer, FAILOVER_TIMING, rankRelays } from '@pos-relay/client'
import { spawnLines, startRedis, waitFor, type LineProcess, type RedisServer } from '@pos-relay/testing'
import { freePort } from '@pos-relay/testing'
import { CLI } from './lib/cli.ts'
import { loadavg, machineInfo, type LoadAvg } from './lib/machine.ts'
import { BENCH_DOC, benchSection, f, machineTable, mdTable, writeSection } from './lib/report.ts'
import { benchLog, errMsg, runScript } from './lib/script.ts'
import { median } from './lib/stats.ts'
import { simulateFailover, type FailoverSimResult } from './rendezvous/failover-sim.ts'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, clients: { type: 'string', default: '1000' }, relays: { type: 'string', default: '50' } } })
const RUNS = Number(values.runs)
const CLIENTS = Number(values.clients)
const SIM_RELAYS = Number(values.relays)
const TTL_S = 30
const POLL_MS = 60_000
const PROTOCOL = '/pos-relay-example/file/2.0.0'
const EXAMPLE = fileURLToPath(new URL('../../examples/file-transfer/src/main.ts', import.meta.url))
const log = benchLog('failover')
const children: LineProcess[] = []
const cleanup = (): void => { for (const c of children) if (c.child.exitCode == null) c.child.kill('SIGKILL') }

const cli = (args: string[], env: Record<string, string> = {}, input?: string): LineProcess => {
  const p = spawnLines(process.execPath, [CLI, ...args], { env: { ...process.env, POS_RELAY_LOG_LEVEL: 'info', ...env }, label: `pos-relay ${args[0]}`, keepStderr: 50, ...(input != null ? { input } : {}) })
  children.push(p)
  return p
}

interface Relay { config: string, port: number, metricsPort: number, peerId: string, process?: LineProcess }

async function startRelay (r: Relay): Promise<void> {
  r.process = cli(['run', '--config', r.config, '--host', '127.0.0.1', '--announce', `/ip4/127.0.0.1/tcp/${r.port}`, '--metrics-host', '127.0.0.1', '--metrics-port', String(r.metricsPort), '--drain-seconds', '5'])
  r.peerId = (await r.process.waitForJson((o) => o.event === 'relay_ready')).peer_id
}

/** waits for the relay to exit (a drain takes at most drain_seconds); one that does not is an error, and is killed */
async function exitOrKill (r: Relay): Promise<void> {
  const p = r.process!
  const timer = setTimeout(() => {
    log(`relay did not exit within 20 s of its signal; stderr tail:\n${p.stderr.slice(-15).join('\n')}`)
    p.child.kill('SIGKILL')
  }, 20_000)
  await p.exited
  clearTimeout(timer)
}

const jsonLines = (p: LineProcess): any[] => p.stdout.flatMap((l) => { try { return [JSON.parse(l)] } catch { return [] } })
const holding = (p: LineProcess): Set<string> => {
  const held = new Set<string>()
  for (const l of jsonLines(p)) {
    if (l.event === 'reserved') held.add(l.relay)
    if (l.event === 'reservation_lost') held.delete(l.relay)
  }
  return held
}

async function withTimeout<T> (p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`no answer within ${ms} ms`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** A new SDK peer sends 64 KiB to `target` with the example's protocol; true when the hash comes back right. */
async function sendOnce (api: string, target: string): Promise<boolean> {
  const peer = await createRelayPeer({ discoveryUrl: api, relayCount: 1, listen: ['/ip4/127.0.0.1/tcp/0'], reservationTimeoutMs: 10_000 })
  try {
    const conn = await peer.relays.dial(target, { signal: AbortSignal.timeout(10_000) })
    const stream = await conn.newStream(PROTOCOL, { runOnLimitedConnection: true })
    const data = randomBytes(64 * 1024)
    // the example's header: the SHA-256 first, so the listener keeps the file only if it matches
    stream.send(new TextEncoder().encode(`${createHash('sha256').update(data).digest('hex')} bench.bin\n`))
    stream.send(data)
    await stream.close()
    let answer = ''
    for await (const chunk of stream) answer += new TextDecoder().decode(chunk.subarray())
    return answer === createHash('sha256').update(data).digest('hex')
  } finally {
    // not awaited: a stop that hangs must not hold the measurement
    void peer.stop().catch(() => {})
  }
}

/** arrival time (performance.now()) of each JSON line, per process */
const lineTimes = new Map<LineProcess, number[]>()
setInterval(() => {
  for (const p of children) {
    const times = lineTimes.get(p) ?? []
    const n = jsonLines(p).length
    while (times.length < n) times.push(performance.now())
    lineTimes.set(p, times)
  }
}, 5).unref()

interface Run { signal: 'SIGKILL' | 'SIGTERM', reservedMs: number, reachableMs: number, attempts: number }

await runScript('failover', { deadlineS: 900, cleanup, log }, async () => {
  const m = machineInfo()
  const loads: Record<string, LoadAvg> = { start: loadavg() }
  const started = performance.now()
  const runs: Run[] = []
  const errors: string[] = []
  let redis: RedisServer | undefined
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-bench-failover-'))
  try {
    redis = await startRedis()
    const port = await freePort()
    const api = `http://127.0.0.1:${port}`
    const discovery = cli(['discovery', '--host', '127.0.0.1', '--port', String(port), '--redis', redis.url, '--ttl', String(TTL_S)], { P2P_SECRET: 'bench' })
    await discovery.waitForJson((o) => o.event === 'discovery_ready')
    const relays: Relay[] = []
    for (let i = 0; i < 3; i++) {
      const r: Relay = { config: join(dir, `relay-${i}.json`), port: await freePort(), metricsPort: await freePort(), peerId: '' }
      const init = cli(['init', '--config', r.config, '--api-url', api, '--port', String(r.port)], {}, 'bench\n')
      if (await init.exited !== 0) throw new Error(`init failed: ${init.stderr.join('\n')}`)
      await startRelay(r)
      relays.push(r)
    }
    const listed = async (): Promise<string[]> => ((await (await fetch(`${api}/api/p2p/relays`)).json()) as Array<{ peer_id: string }>).map((x) => x.peer_id)
    await waitFor(async () => (await listed()).length === 3, { timeoutMs: 15_000, message: 'relays not listed' })

    const listener = spawnLines(process.execPath, [EXAMPLE, 'listen', '--discovery', api, '--out', dir, '--relay-count', '1'], { label: 'listener', keepStderr: 50 })
    children.push(listener)
    const target = String((await listener.waitForJson((o) => o.event === 'listening', 30_000)).peer_id)
    const ranking = rankRelays(relays.map((r) => ({ peer_id: r.peerId })), target).map((r) => r.peer_id)
    const home = relays.find((r) => r.peerId === ranking[0])!
    await waitFor(() => holding(listener).has(home.peerId), { timeoutMs: 20_000, message: 'listener not on its first relay' })

    for (let i = 0; i < RUNS * 2; i++) {
      const signal = i % 2 === 0 ? 'SIGKILL' : 'SIGTERM'
      try {
        if (home.process?.child.exitCode != null || home.process?.child.signalCode != null) await startRelay(home)
        await waitFor(() => holding(listener).has(home.peerId), { timeoutMs: 30_000, message: 'listener not back on its first relay' })
        const before = jsonLines(listener).length
        const failedAt = performance.now()
        home.process!.child.kill(signal)
        // (b): dialers made after the failure, one after another, until one delivers
        let attempts = 0
        let reachableMs = NaN
        while (performance.now() - failedAt < 30_000) {
          attempts++
          if (await withTimeout(sendOnce(api, target), 15_000).catch((err) => { log(`dialer ${attempts}: ${errMsg(err)}`); return false })) { reachableMs = performance.now() - failedAt; break }
        }
        // (a): the listener's `reserved` line for its fallback, timed by when it was seen
        await waitFor(() => jsonLines(listener).slice(before).some((l) => l.event === 'reserved' && l.relay !== home.peerId), { timeoutMs: 20_000, message: 'listener did not move' })
        const reservedMs = await reservedAt(listener, before, home.peerId, failedAt)
        if (!Number.isFinite(reachableMs)) throw new Error('no dialer got through within 30 s')
        runs.push({ signal, reservedMs, reachableMs, attempts })
        log(`${signal} run ${Math.floor(i / 2) + 1}: reserved elsewhere after ${f(reservedMs, 0)} ms, reachable after ${f(reachableMs, 0)} ms (${attempts} dialer(s))`)
        await exitOrKill(home)
      } catch (err) {
        errors.push(`${signal}: ${errMsg(err)}`)
        log(`${signal}: ${errMsg(err)}`)
        await exitOrKill(home)
      }
    }
    loads.end = loadavg()

    // 2. the model
    const idFrom = async (label: string): Promise<string> =>
      peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', createHash('sha256').update(`failover-sim ${label}`).digest())).toString()
    const clientIds = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => await idFrom(`client ${i}`)))
    const relayIds = await Promise.all(Array.from({ length: SIM_RELAYS }, async (_, i) => await idFrom(`relay ${i}`)))
    const sims: Array<{ relayCount: number, failure: 'SIGKILL' | 'SIGTERM', jitter: boolean, r: FailoverSimResult }> = []
    for (const relayCount of [1, 2]) {
      for (const failure of ['SIGKILL', 'SIGTERM'] as const) {
        for (const jitter of [true, false]) {
          sims.push({
            relayCount,
            failure,
            jitter,
            r: simulateFailover({ clients: clientIds, relays: relayIds, relayCount, pollMs: POLL_MS, ttlMs: TTL_S * 1000, failure, refreshSpreadMs: FAILOVER_TIMING.refreshSpreadMs, refreshMinGapMs: FAILOVER_TIMING.refreshMinGapMs, jitter, seed: 1 })
          })
        }
      }
    }
    const totalS = (performance.now() - started) / 1000
    writeReport({ m, loads, runs, errors, sims, totalS })
  } finally {
    cleanup()
    await redis?.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

/** when the listener printed its fallback's `reserved` line: stdout lines carry no time, so it is read from a marker set as lines arrive */
async function reservedAt (listener: LineProcess, before: number, home: string, failedAt: number): Promise<number> {
  const idx = jsonLines(listener).slice(before).findIndex((l) => l.event === 'reserved' && l.relay !== home)
  return (lineTimes.get(listener)?.[before + idx] ?? NaN) - failedAt
}

function writeReport (o: { m: ReturnType<typeof machineInfo>, loads: Record<string, LoadAvg>, runs: Run[], errors: string[], sims: Array<{ relayCount: number, failure: 'SIGKILL' | 'SIGTERM', jitter: boolean, r: FailoverSimResult }>, totalS: number }): void {
  const of = (signal: Run['signal']): Run[] => o.runs.filter((r) => r.signal === signal)
  const stat = (xs: number[]): string => xs.length === 0 ? 'n/a' : `${f(median(xs) / 1000, 2)} s / ${f(Math.max(...xs) / 1000, 2)} s`
  const sim = (n: number, failure: string, jitter = true): FailoverSimResult => o.sims.find((s) => s.relayCount === n && s.failure === failure && s.jitter === jitter)!.r
  const body = [
    'Generated by `npm run bench:failover` (`bench/src/failover.ts`, model in `bench/src/rendezvous/failover-sim.ts`). Issue 18: a peer whose relay dies or drains must be reachable again within 10 s.',
    '',
    '### Time to reachable again (measured, JS client)',
    '',
    `Real Redis, \`pos-relay discovery --ttl ${TTL_S}\`, three \`pos-relay run\` relays (drain 5 s) and the JS file-transfer example listening with \`--relay-count 1\` (default 60 s poll), all on loopback. ` +
      'Each run signals the relay the listener lives on (its first-ranked one), then measures (a) until the listener prints `reserved` for another relay and (b) until a dialer made after the failure (an SDK peer in the bench process, relayCount 1, with the list discovery then gives it: after a SIGKILL it still names the dead relay, which ranks first for the listener) has sent 64 KiB with the example\'s protocol and got the right hash back; a dialer that fails is followed by a new one at once. ' +
      'Then the relay is started again with the same identity and the listener moves back (make-before-break) before the next run. (b) includes creating the dialer (discovery poll, its own reservation) and is what an app sees.',
    '',
    ...mdTable(['failure', 'runs', 'listener reserved elsewhere: median / max', 'new dialer delivered: median / max', 'dialers needed (max)'],
      (['SIGKILL', 'SIGTERM'] as const).map((s) => [s, of(s).length, stat(of(s).map((r) => r.reservedMs)), stat(of(s).map((r) => r.reachableMs)), of(s).length === 0 ? 'n/a' : Math.max(...of(s).map((r) => r.attempts))])),
    '',
    '### Discovery requests caused by one relay failure (model, 1,000 clients)',
    '',
    `${CLIENTS} clients, ${SIM_RELAYS} relays, each client polls every ${POLL_MS / 1000} s at its own phase; one relay fails at t = 0. The SDK's ranking (relaysToReserve) decides who held the relay and the SDK's timings (FAILOVER_TIMING) when they ask: one refresh after a uniform 0–${FAILOVER_TIMING.refreshSpreadMs / 1000} s delay per client that held it, none for failed background retries (at most one per ${FAILOVER_TIMING.refreshMinGapMs / 1000} s anyway), none for clients that did not hold it. ` +
      `A SIGKILLed relay stays listed until its TTL (${TTL_S} s) runs out; a drained one leaves at once. "old rule": the SDK before issue 18 kept retrying the dead relay until a poll no longer listed it.`,
    '',
    ...mdTable(['relayCount', 'failure', 'clients that held the relay', 'extra requests per client', 'per client that held it', 'peak requests in 1 s (without the failure)', 'peak in 10 ms, jittered / not jittered', 'old rule: time to move, mean / max'],
      o.sims.filter((s) => s.jitter).map(({ relayCount, failure, r }) => [relayCount, failure, r.affected, f(r.extraPerClient, 3), f(r.extraPerAffectedClient, 2), `${r.peakPerSecond} (${r.baselinePeakPerSecond})`, `${r.peakPer10ms} / ${sim(relayCount, failure, false).peakPer10ms}`, `${f(r.oldMoveMeanMs / 1000, 1)} s / ${f(r.oldMoveMaxMs / 1000, 1)} s`])),
    '',
    'Reading it: one failure costs one discovery request per client that lived on the relay, about relayCount / relays of all clients, spread over 2 s so discovery sees a bump of a few requests per second over its regular load instead of all of them in the same instant (the 10 ms column). The clients move at once, before that request: it only refreshes their list.',
    '',
    ...(o.errors.length > 0 ? ['### Errors', '', ...o.errors.map((e) => `- ${e}`), ''] : []),
    '### Machine',
    '',
    ...machineTable(o.m, { coresNote: 'Redis, discovery, three relays, the listener and the bench driver share them, and so did other jobs on the machine', loadavg: o.loads, extraRows: [['Run time', `${f(o.totalS, 0)} s`]] }),
    ''
  ].join('\n')
  process.stdout.write(body + '\n')
  const section = benchSection({
    id: 'relay-failover',
    title: 'Relay failover: time to reachable again, discovery requests per failure',
    command: 'npm run bench:failover',
    machine: o.m,
    parts: [
      ...(['SIGKILL', 'SIGTERM'] as const).filter((s) => of(s).length > 0).map((s) => `${s}: reachable again after ${stat(of(s).map((r) => r.reachableMs))} (median / max, ${of(s).length} runs, JS, relayCount 1)`),
      `one relay failure: ${f(sim(2, 'SIGKILL').extraPerClient, 3)} extra discovery requests per client (${CLIENTS} clients, ${SIM_RELAYS} relays, relayCount 2)`
    ],
    body
  })
  process.stderr.write(writeSection(process.env.BENCH_OUT ?? BENCH_DOC, section) + '\n')
}
