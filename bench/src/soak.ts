/**
 * Soak: `npm run soak -- --minutes N` (not in CI). Runs the whole accounts
 * path for N minutes in a bounded loop and checks that nothing accumulates:
 *
 *   - a real Redis (persistent, like production), discovery issuing tickets,
 *     two relays with `--auth` and metering; relay A lives for the whole run
 *     and is the one measured, relay B is restarted (SIGTERM) every 3rd cycle;
 *   - every cycle: reservation churn (listeners replaced), circuits of 256 KiB
 *     to 2 MiB checked by sha256 end to end; every 5th cycle Redis is killed
 *     during the circuits and restarted; every 4th cycle a connection flood
 *     (idle sockets and garbage bytes) against relay A.
 *
 * After a warm-up (default 2 min) and at the end, with traffic stopped and
 * the same number of listeners held, it samples relay A's RSS, open fds,
 * reservations and connections, and the bytes metered for the account. The
 * report (section "soak" of docs/benchmarks.md) states the criteria: RSS
 * within +10 %, fds within ±5, reservations back to the same figure, and the
 * bytes metered in Redis equal to the bytes the relays counted
 * (pos_relay_relayed_bytes_total of every relay incarnation). Loopback only;
 * every count and wait is bounded.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import type { Connection, Libp2p } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { presentTicket } from '@pos-relay/client'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { freePort, startRedis, type RedisServer } from '@pos-relay/testing'
import { createLibp2p } from 'libp2p'
import { killAllRelays, metricValue, runCli, startCliRelay, startCliServer, type CliRelay, type CliServer } from './lib/cli.ts'
import { loadavg, machineInfo } from './lib/machine.ts'
import { BENCH_DOC, benchSection, errorsSection, f, machineTable, mdTable, signed, writeSection } from './lib/report.ts'

const { values: opts } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    'warmup-seconds': { type: 'string', default: '120' },
    out: { type: 'string', default: BENCH_DOC }
  }
})
const MINUTES = Number(opts.minutes)
const WARMUP_S = Number(opts['warmup-seconds'])
if (!(MINUTES > 0 && MINUTES <= 24 * 60) || !(WARMUP_S >= 0 && WARMUP_S <= 3600)) {
  process.stderr.write('usage: npm run soak -- [--minutes 1..1440] [--warmup-seconds 0..3600] [--out docs/benchmarks.md | -]\n')
  process.exit(2)
}

const KiB = 1024
const MiB = 1024 * KiB
const P2P_SECRET = 'bench-limits' // the secret startCliRelay's `pos-relay init` writes
const ADMIN = 'soak-admin-' + randomBytes(8).toString('hex')
const SINK = '/pos-relay-soak/sink/1.0.0'
const LISTENERS_A = 8
const LISTENERS_B = 4
const CIRCUITS_PER_CYCLE = 6
const FLOOD_IDLE = 200
const FLOOD_GARBAGE = 50
const CYCLE_MS = 4000

const log = (msg: string): void => { process.stderr.write(`soak ${new Date().toISOString().slice(11, 19)} ${msg}\n`) }

interface Sample { at: string, rssMiB: number, fds: number, reservations: number, connections: number, meteredBytes: number, relayedBytes: number }
interface Peer { node: Libp2p, relay: CliRelay }

const errors: string[] = []
const cleanups: Array<() => Promise<unknown>> = []
process.on('exit', killAllRelays)

function rssMiB (pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? NaN) / 1024
}
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

async function main (): Promise<void> {
  const machine = machineInfo()
  const load: Record<string, ReturnType<typeof loadavg>> = { start: loadavg() }
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-soak-'))
  cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
  const redis: RedisServer = await startRedis({ persistent: true })
  cleanups.push(async () => { await redis.stop() })

  // discovery: tickets, accounts and usage in Redis
  const keysFile = join(dir, 'ticket-keys.json')
  await runCli(['keys', 'generate', '--out', keysFile])
  const tiersFile = join(dir, 'tiers.json')
  writeFileSync(tiersFile, JSON.stringify({ free: { name: 'free', max_reservations: 64, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 } }))
  const apiPort = await freePort()
  const api = `http://127.0.0.1:${apiPort}`
  const discovery: CliServer = await startCliServer('discovery', ['discovery', '--host', '127.0.0.1', '--port', String(apiPort), '--redis', redis.url,
    '--ticket-keys-file', keysFile, '--tiers-file', tiersFile, '--log-level', 'warn'], 'discovery_ready', { env: { P2P_SECRET, ADMIN_SECRET: ADMIN } })
  cleanups.push(async () => { await discovery.stop() })
  const admin = async (method: string, path: string, body?: unknown): Promise<any> => {
    const res = await fetch(api + path, { method, headers: { authorization: `Bearer ${ADMIN}`, ...(body != null ? { 'content-type': 'application/json' } : {}) }, ...(body != null ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(10_000) })
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
    return await res.json()
  }
  const { api_key: apiKey, account } = await admin('POST', '/api/admin/accounts', { name: 'soak', tier: 'free' })
  const meteredBytes = async (): Promise<number> => {
    const from = new Date(Date.now() - 24 * 3600_000).toISOString()
    const to = new Date(Date.now() + 3600_000).toISOString()
    const rows = await admin('GET', `/api/admin/usage?account=${account.id}&from=${from}&to=${to}&format=json`) as any[]
    return rows.reduce((n, r) => n + r.bytes_to_destination + r.bytes_to_source, 0)
  }
  const ticket = async (peer: Libp2p): Promise<string> => {
    const res = await fetch(`${api}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: peer.peerId.toString() }), signal: AbortSignal.timeout(10_000) })
    if (res.status !== 200) throw new Error(`ticket: ${res.status} ${await res.text()}`)
    return ((await res.json()) as { ticket: string }).ticket
  }

  // relays: auth, metering every second, registered with discovery
  const relayFlags = ['--auth', '--redis', redis.url, '--tiers-file', tiersFile, '--metering-interval', '1']
  // every legitimate peer of the soak dials from 127.0.0.1, where a real fleet sees many addresses:
  // the per-IP connection rate (default 20/s) is raised for them; the floods come from 127.0.0.2
  const configure = (cfg: Record<string, any>): void => { cfg.api_url = api; cfg.rate_limits = { ...cfg.rate_limits, ip_connections_per_second: 500 } }
  const relayA = await startCliRelay('relay-a', dir, relayFlags, { configure })
  let relayB = await startCliRelay('relay-b', dir, relayFlags, { configure })
  cleanups.push(async () => { await relayA.stop() }, async () => { await relayB.stop() })
  // bytes counted by relay B's earlier incarnations (its counter restarts with it)
  let relayedByEarlierB = 0
  const relayed = async (r: CliRelay): Promise<number> => metricValue(await r.metrics(), 'pos_relay_relayed_bytes_total')

  const nodes = new Set<Libp2p>()
  const newNode = async (): Promise<Libp2p> => {
    const node = await createLibp2p({ transports: [tcp(), circuitRelayTransport()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
    nodes.add(node)
    return node
  }
  const stopNode = async (node: Libp2p): Promise<void> => { nodes.delete(node); await node.stop() }
  cleanups.push(async () => { for (const node of [...nodes]) await stopNode(node) })
  const relayAddr = (r: CliRelay): Multiaddr => multiaddr(r.addr)
  /** a node holding a ticket presented to relay `r` (needs Redis, for the ticket) */
  const withTicket = async (r: CliRelay, node?: Libp2p): Promise<Libp2p> => {
    const peer = node ?? await newNode()
    const conn = await peer.dial(relayAddr(r))
    await presentTicket(peer, conn.remotePeer, await ticket(peer))
    return peer
  }
  const newListener = async (r: CliRelay): Promise<Peer> => {
    const node = await newNode()
    await node.handle(SINK, async (stream) => {
      const hash = createHash('sha256')
      for await (const chunk of stream) hash.update(chunk.subarray())
      stream.send(new TextEncoder().encode(hash.digest('hex')))
      await stream.close()
    }, { runOnLimitedConnection: true })
    await withTicket(r, node)
    await (node as any).components.transportManager.listen([relayAddr(r).encapsulate('/p2p-circuit')])
    return { node, relay: r }
  }
  const listeners: Peer[] = []
  for (let i = 0; i < LISTENERS_A; i++) listeners.push(await newListener(relayA))
  for (let i = 0; i < LISTENERS_B; i++) listeners.push(await newListener(relayB))

  let circuitsOk = 0
  let circuitsFailed = 0
  let payloadBytes = 0
  /** one circuit from a prepared dialer to a listener; the sink's hash must match what was sent */
  const circuit = async (dialer: Libp2p, to: Peer, size: number): Promise<void> => {
    try {
      const conn: Connection = await dialer.dial(relayAddr(to.relay).encapsulate(`/p2p-circuit/p2p/${to.node.peerId}`), { signal: AbortSignal.timeout(20_000) })
      const stream = await conn.newStream(SINK, { runOnLimitedConnection: true, signal: AbortSignal.timeout(20_000) })
      const hash = createHash('sha256')
      for (let sent = 0; sent < size; sent += 64 * KiB) {
        const chunk = randomBytes(Math.min(64 * KiB, size - sent))
        hash.update(chunk)
        if (!stream.send(chunk)) {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => { reject(new Error('drain timeout')) }, 20_000)
            stream.addEventListener('drain', () => { clearTimeout(timer); resolve() }, { once: true })
            stream.addEventListener('close', (evt) => { clearTimeout(timer); reject(evt.error ?? new Error('closed')) }, { once: true })
          })
        }
      }
      await stream.close()
      let reply = ''
      for await (const chunk of stream) reply += new TextDecoder().decode(chunk.subarray())
      if (reply !== hash.digest('hex')) throw new Error('sink hash differs from what was sent')
      circuitsOk++
      payloadBytes += size
    } catch (err: any) {
      circuitsFailed++
      if (errors.length < 20) errors.push(`circuit to ${to.relay.name}: ${err?.message ?? err}`)
    } finally {
      await stopNode(dialer)
    }
  }
  const flood = async (r: CliRelay): Promise<void> => {
    const sockets = []
    for (let i = 0; i < FLOOD_IDLE + FLOOD_GARBAGE; i++) {
      const s = connect({ port: r.port, host: '127.0.0.1', localAddress: '127.0.0.2' })
      s.on('error', () => {})
      if (i >= FLOOD_IDLE) s.on('connect', () => s.write(randomBytes(512)))
      sockets.push(s)
    }
    await sleep(2000)
    for (const s of sockets) s.destroy()
  }
  const restartB = async (): Promise<void> => {
    relayedByEarlierB += await relayed(relayB)
    const mine = listeners.filter((l) => l.relay === relayB)
    for (const l of mine) { listeners.splice(listeners.indexOf(l), 1); await stopNode(l.node) }
    await relayB.stop(10_000)
    relayB = await startCliRelayAgain(relayB)
    for (let i = 0; i < LISTENERS_B; i++) listeners.push(await newListener(relayB))
  }

  const series: Array<{ minute: number, rssMiB: number, fds: number }> = []
  const sample = async (at: string): Promise<Sample> => {
    // traffic has stopped: let closes, metering flushes (1 s) and timers settle
    await sleep(5000)
    const text = await relayA.metrics()
    const relayedBytes = metricValue(text, 'pos_relay_relayed_bytes_total') + await relayed(relayB) + relayedByEarlierB
    return {
      at,
      rssMiB: rssMiB(relayA.pid),
      fds: fdCount(relayA.pid),
      reservations: metricValue(text, 'pos_relay_reservations_active'),
      connections: metricValue(text, 'pos_relay_connections_active'),
      meteredBytes: await meteredBytes(),
      relayedBytes
    }
  }

  const t0 = Date.now()
  const warmupEnd = t0 + WARMUP_S * 1000
  const end = warmupEnd + MINUTES * 60_000
  let start: Sample | undefined
  let cycle = 0
  let redisRestarts = 0
  let relayRestarts = 0
  let floods = 0
  log(`warm-up ${WARMUP_S} s, then ${MINUTES} min; relay A pid ${relayA.pid}`)
  while (Date.now() < end) {
    if (start == null && Date.now() >= warmupEnd) {
      start = await sample('start')
      load.afterWarmup = loadavg()
      log(`start: ${JSON.stringify(start)}`)
    }
    cycle++
    const cycleStart = Date.now()
    // reservation churn on A: the two oldest listeners go, two new ones reserve
    for (let i = 0; i < 2; i++) {
      const old = listeners.find((l) => l.relay === relayA)!
      listeners.splice(listeners.indexOf(old), 1)
      await stopNode(old.node)
      listeners.push(await newListener(relayA))
    }
    // dialers get their tickets first: during a Redis outage discovery cannot issue any
    const jobs: Array<{ dialer: Libp2p, to: Peer, size: number }> = []
    for (let i = 0; i < CIRCUITS_PER_CYCLE; i++) {
      const to = listeners[Math.floor(Math.random() * listeners.length)]!
      jobs.push({ dialer: await withTicket(to.relay), to, size: 256 * KiB + Math.floor(Math.random() * 7) * 256 * KiB })
    }
    const outage = cycle % 5 === 2
    const running = Promise.all(jobs.map(async (j) => { await circuit(j.dialer, j.to, j.size) }))
    if (outage) {
      await sleep(100)
      await redis.kill()
      await sleep(3000)
      await redis.restart()
      redisRestarts++
    }
    await running
    if (outage) await sleep(3000) // metering batches kept during the outage are replayed
    if (cycle % 4 === 1) { await flood(relayA); floods++ }
    if (cycle % 3 === 0) { await restartB(); relayRestarts++ }
    // at most one cycle per CYCLE_MS: a steady load rather than as fast as the machine goes
    await sleep(Math.max(0, CYCLE_MS - (Date.now() - cycleStart)))
    const minute = (Date.now() - t0) / 60_000
    series.push({ minute, rssMiB: rssMiB(relayA.pid), fds: fdCount(relayA.pid) })
    if (cycle % 10 === 0) log(`cycle ${cycle}: ${circuitsOk} circuits ok, ${circuitsFailed} failed; relay A RSS ${f(series.at(-1)!.rssMiB)} MiB, fds ${series.at(-1)!.fds}`)
  }
  start ??= await sample('start')
  const last = await sample('end')
  load.end = loadavg()
  log(`end: ${JSON.stringify(last)}`)

  const rssGrowth = (last.rssMiB - start.rssMiB) / start.rssMiB
  const checks: Array<[string, boolean, string]> = [
    ['RSS within +10 %', rssGrowth <= 0.10, `${f(start.rssMiB)} → ${f(last.rssMiB)} MiB (${signed(rssGrowth * 100, 1)} %)`],
    ['open fds within ±5', Math.abs(last.fds - start.fds) <= 5, `${start.fds} → ${last.fds}`],
    ['reservations back to the same figure', last.reservations === start.reservations, `${start.reservations} → ${last.reservations}`],
    ['metered bytes equal to the relays\' counts', last.meteredBytes === last.relayedBytes, `metered ${last.meteredBytes} B, relays counted ${last.relayedBytes} B`],
    ['every circuit delivered its bytes intact', circuitsFailed === 0, `${circuitsOk} ok, ${circuitsFailed} failed`]
  ]
  const passed = checks.filter((c) => c[1]).length
  const rssValues = series.filter((s) => s.minute * 60 >= WARMUP_S).map((s) => s.rssMiB)
  const body = [
    'Relay config as `pos-relay init` writes it, except `rate_limits.ip_connections_per_second` 500: every legitimate peer dials from 127.0.0.1 and the floods come from 127.0.0.2. ',
    `A ${MINUTES}-minute run after a ${WARMUP_S} s warm-up: ${cycle} cycles, ${circuitsOk + circuitsFailed} circuits (${f(payloadBytes / MiB, 0)} MiB of payload, each checked by sha256 end to end), ${relayRestarts} restarts of relay B (SIGTERM), ${redisRestarts} Redis kills during circuits, ${floods} connection floods (${FLOOD_IDLE} idle sockets and ${FLOOD_GARBAGE} sending garbage) against relay A. Relay A runs for the whole soak and is the one measured; both relays run \`--auth\` with metering every second. Samples are taken with traffic stopped, 5 s after the last circuit, with ${LISTENERS_A} listeners holding reservations on A.`,
    '',
    '### Checks',
    '',
    ...mdTable(['check', 'result', 'figures'], checks.map(([name, ok, fig]) => [name, ok ? 'met' : '**not met**', fig])),
    '',
    '### Start and end',
    '',
    ...mdTable(['', 'RSS MiB', 'fds', 'reservations', 'connections', 'metered bytes', 'bytes counted by the relays'],
      [start, last].map((s) => [s.at, f(s.rssMiB), s.fds, s.reservations, s.connections, s.meteredBytes, s.relayedBytes])),
    '',
    `Relay A's RSS after each cycle past the warm-up: min ${f(Math.min(...rssValues))}, max ${f(Math.max(...rssValues))} MiB.`,
    '',
    '### Machine',
    '',
    ...machineTable(machine, { coresNote: 'relays, discovery, Redis, the peers and the driver share them; other work ran beside it', loadavg: load }),
    '',
    ...errorsSection(errors)
  ].join('\n')
  const section = benchSection({
    id: 'soak',
    title: 'Soak',
    command: `npm run soak -- --minutes ${MINUTES}`,
    machine,
    parts: [`${passed}/${checks.length} checks met over ${MINUTES} min`, `relay RSS ${signed(rssGrowth * 100, 1)} %`, `fds ${signed(last.fds - start.fds, 0)}`, `metered ${last.meteredBytes === last.relayedBytes ? '=' : '≠'} counted`],
    body
  })
  log(writeSection(opts.out!, section))
  process.stdout.write(body + '\n')
  process.exitCode = passed === checks.length ? 0 : 1
}

/** relay B again, same config and flags (same identity); its listening port changes. */
async function startCliRelayAgain (old: CliRelay): Promise<CliRelay> {
  const server = await startCliServer(old.name, old.args, 'relay_ready')
  const addr: string = server.ready.addrs.find((a: string) => a.startsWith('/ip4/127.0.0.1/tcp/')) ?? server.ready.addrs[0]
  const metricsPort: number = server.ready.metrics_port
  return {
    ...old,
    pid: server.pid,
    addr,
    port: Number(/\/tcp\/(\d+)/.exec(addr)![1]),
    metricsPort,
    async metrics () { return await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text() },
    stop: server.stop,
    stderrTail: server.stderrTail
  }
}

try {
  await main()
} catch (err: any) {
  process.stderr.write(`soak failed: ${err?.stack ?? err}\n`)
  process.exitCode = 1
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => {})
}
process.exit()
