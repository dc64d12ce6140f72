/**
 * Stalled circuits: `npm run bench:stalled`. Does the relay-wide budget for
 * buffered bytes (limits.max_buffered_bytes, default 256 MiB) bound the
 * relay's memory when circuits lead to listeners that never read?
 *
 * One relay (`pos-relay run`, the default budget and max_circuits) and, in
 * this process, destinations that answer STOP by hand and then never read
 * their end of the circuit, and sources that speak HOP by hand: every
 * circuit carries raw bytes, so nothing but the relay stands between a
 * sender and its stalled reader (a js-libp2p listener would stop the sender
 * with its own end-to-end yamux window). All circuits are opened first, then
 * every sender pushes until the relay stops it (no sender progressed for
 * QUIET_MS) or MAX_STALL_MS passed. The relay's RSS is read from /proc:
 * idle (peers connected and reserved, no circuit), peak (VmHWM) and after the
 * circuits are closed. Goal (issue 12): peak <= idle + budget + 64 MiB.
 *
 * The per-IP and per-peer circuit caps and the per-IP connection limits are
 * lifted (every peer dials from 127.0.0.1); the budget is what is measured.
 * Bounded: circuits and time are capped, and the run stops early (not met)
 * if the relay's RSS passes --rss-cap-mib.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { identify } from '@libp2p/identify'
import type { Libp2p, Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { pbStream } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { createLibp2p } from 'libp2p'
import { killAllRelays, metricValue, startCliRelay } from './lib/cli.ts'
import { HOP, RESERVE, varintFields } from './limits/hop.ts'
import { loadavg, machineInfo } from './lib/machine.ts'
import { readMem } from './lib/proc.ts'
import { handleStopPaused } from '../../relay-image/test/stalled-circuit.ts'
import { BENCH_DOC, benchSection, errorsSection, f, machineTable, mdTable, signed, writeSection } from './lib/report.ts'

const { values: opts } = parseArgs({
  options: {
    circuits: { type: 'string', default: '1024' },
    'rss-cap-mib': { type: 'string', default: '4096' },
    rounds: { type: 'string', default: '3' },
    out: { type: 'string', default: BENCH_DOC }
  }
})
const CIRCUITS = Number(opts.circuits)
const RSS_CAP_MIB = Number(opts['rss-cap-mib'])
const ROUNDS = Number(opts.rounds)
if (!(Number.isInteger(CIRCUITS) && CIRCUITS >= 1 && CIRCUITS <= 1024) || !(RSS_CAP_MIB >= 256 && RSS_CAP_MIB <= 65536) || !(Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 10)) {
  process.stderr.write('usage: npm run bench:stalled -- [--circuits 1..1024] [--rounds 1..10] [--rss-cap-mib 256..65536] [--out docs/benchmarks.md | -]\n')
  process.exit(2)
}

const MiB = 1024 * 1024
/** the relay's default limits.max_buffered_bytes, which this run keeps */
const BUDGET_MIB = 256
/** the issue's allowance above idle + budget */
const SLACK_MIB = 64
/** circuits per source peer (within the default peer_max_circuits 16) and per destination (upstream's 32 HOP/STOP streams per connection) */
const PER_SOURCE = 16
const PER_DESTINATION = 32
const CHUNK = new Uint8Array(64 * 1024)
/** the senders are held once none progressed for this long */
const QUIET_MS = 5000
const MAX_STALL_MS = 120_000
const SAMPLE_MS = 100

const raw = { encode: (b: Uint8Array) => b, decode: (b: Uint8Array | { subarray: () => Uint8Array }) => (b instanceof Uint8Array ? b : b.subarray()) }

const log = (msg: string): void => { process.stderr.write(`stalled ${new Date().toISOString().slice(11, 19)} ${msg}\n`) }
const errors: string[] = []
const cleanups: Array<() => Promise<unknown>> = []
process.on('exit', killAllRelays)

/** how circuits' ends closed before the bench closed them, by side and error: a stalled circuit must stay open */
const closes = new Map<string, number>()
let benchClosing = false
function noteClose (side: string, stream: Stream): void {
  stream.addEventListener('close', (evt) => {
    if (benchClosing) return
    const key = `${side}: ${evt.error?.message ?? 'closed'}`
    closes.set(key, (closes.get(key) ?? 0) + 1)
  }, { once: true })
}

function varint (n: number): number[] {
  const out: number[] = []
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return out
}

/** HopMessage { type: CONNECT, peer: { id } } */
function connectMessage (node: Libp2p): Uint8Array {
  const id = node.peerId.toMultihash().bytes
  const peer = [0x0a, ...varint(id.length), ...id]
  return Uint8Array.from([0x08, 0x01, 0x12, ...varint(peer.length), ...peer])
}

/** One HOP request by hand; its status and the stream (a circuit, when CONNECT answered OK). */
async function hop (node: Libp2p, relay: Multiaddr, message: Uint8Array): Promise<{ status?: number, stream: Stream }> {
  const stream = await node.dialProtocol(relay, HOP, { runOnLimitedConnection: true })
  const timer = setTimeout(() => { stream.abort(new Error('no HOP answer in 20 s')) }, 20_000)
  try {
    const pb = pbStream(stream)
    await pb.write(message, raw)
    const reply = await pb.read(raw)
    return { status: varintFields(reply).get(5), stream: pb.unwrap() }
  } finally {
    clearTimeout(timer)
  }
}

async function newNode (): Promise<Libp2p> {
  // no connection monitor: its pings share the connections with a thousand
  // backed-up circuits on a busy machine, time out, and it then aborts the
  // whole connection (the relay turns it off for the same reason)
  const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], connectionMonitor: { enabled: false }, services: { identify: identify() } })
  cleanups.push(async () => { await node.stop() })
  return node
}

/** A destination with a reservation that accepts circuits and never reads them. */
async function stalledDestination (relay: Multiaddr, held: Stream[]): Promise<Libp2p> {
  const node = await newNode()
  await handleStopPaused(node, (circuit) => {
    held.push(circuit)
    noteClose('destination', circuit)
  }, { maxInboundStreams: PER_DESTINATION * 2 })
  const reserve = await hop(node, relay, RESERVE)
  reserve.stream.abort(new Error('done'))
  if (reserve.status !== 100) throw new Error(`reservation refused: status ${reserve.status}`)
  return node
}

interface Round {
  opened: number
  statuses: string
  heldCircuits: number
  idle: number
  openIdle: number
  peak: number
  held: number
  after: number
  afterCircuits: number
  stallSeconds: number
  heldBuffered: number
  peakBuffered: number
  sent: number
  capped: boolean
  bound: number
  met: boolean
}

/** One relay, its circuits stalled and then closed; the relay and the peers are stopped before it returns. */
async function round (n: number): Promise<Round> {
  const cleanupsBefore = cleanups.length
  try {
    return await measureRound(n)
  } finally {
    for (const c of cleanups.splice(cleanupsBefore).reverse()) await c().catch(() => {})
  }
}

async function measureRound (n: number): Promise<Round> {
  log(`round ${n}`)
  benchClosing = false
  closes.clear()
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-stalled-'))
  cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
  const relay = await startCliRelay('relay', dir, [], {
    configure: (cfg) => {
      cfg.limits = { ...cfg.limits, ip_max_circuits: 0, ip_max_connections: 0 }
      cfg.rate_limits = { ...cfg.rate_limits, ip_connections_per_second: 1000 }
    }
  })
  cleanups.push(async () => { await relay.stop() })
  const relayMa = multiaddr(relay.addr)
  // a relay busy with a thousand circuits may answer slowly: a missed scrape reads as empty
  const metrics = async (): Promise<string> => {
    try {
      const res = await fetch(`http://127.0.0.1:${relay.metricsPort}/metrics`, { signal: AbortSignal.timeout(60_000) })
      return await res.text()
    } catch (err: any) {
      if (errors.length < 20) errors.push(`metrics scrape failed: ${String(err?.message ?? err)}`)
      return ''
    }
  }
  const budgetBytes = metricValue(await metrics(), 'pos_relay_circuit_buffered_bytes')
  log(`relay ${relay.pid} up; buffered bytes ${budgetBytes}`)

  // peers: destinations reserved, sources connected; then the relay's idle RSS
  const destinationCount = Math.ceil(CIRCUITS / PER_DESTINATION)
  const sourceCount = Math.ceil(CIRCUITS / PER_SOURCE)
  const atDestinations: Stream[] = []
  const destinations: Libp2p[] = []
  for (let i = 0; i < destinationCount; i++) destinations.push(await stalledDestination(relayMa, atDestinations))
  const sources: Libp2p[] = []
  for (let i = 0; i < sourceCount; i++) {
    const node = await newNode()
    await node.dial(relayMa)
    sources.push(node)
  }
  await sleep(3000)
  const idle = readMem(relay.pid)
  log(`idle: ${destinationCount} destinations reserved, ${sourceCount} sources connected; RSS ${f(idle.rssMiB)} MiB`)

  // every circuit opened before any byte flows, so none is refused for a budget already used up
  const circuits: Stream[] = []
  const statuses = new Map<string, number>()
  await Promise.all(sources.map(async (node, s) => {
    for (let k = 0; k < PER_SOURCE; k++) {
      const i = s * PER_SOURCE + k
      if (i >= CIRCUITS) return
      try {
        const r = await hop(node, relayMa, connectMessage(destinations[i % destinationCount]!))
        const key = String(r.status)
        statuses.set(key, (statuses.get(key) ?? 0) + 1)
        if (r.status === 100) { circuits.push(r.stream); noteClose('source', r.stream) } else r.stream.abort(new Error('refused'))
      } catch (err: any) {
        statuses.set('error', (statuses.get('error') ?? 0) + 1)
        if (errors.length < 10) errors.push(`CONNECT: ${String(err?.message ?? err).split('\n')[0]}`)
      }
    }
  }))
  const opened = circuits.length
  await sleep(2000)
  const openIdle = readMem(relay.pid)
  log(`circuits opened: ${opened} of ${CIRCUITS} (${JSON.stringify(Object.fromEntries(statuses))}); RSS before any byte ${f(openIdle.rssMiB)} MiB`)

  // every sender pushes until the relay holds it
  let sent = 0
  let lastProgress = Date.now()
  let stop = false
  const senders = circuits.map(async (stream) => {
    try {
      while (!stop) {
        if (stream.send(CHUNK)) { sent += CHUNK.byteLength; lastProgress = Date.now(); continue }
        sent += CHUNK.byteLength
        lastProgress = Date.now()
        await new Promise<void>((resolve) => {
          const done = (): void => { stream.removeEventListener('drain', done); stream.removeEventListener('close', done); resolve() }
          stream.addEventListener('drain', done)
          stream.addEventListener('close', done)
        })
        if (stream.status !== 'open') return
      }
    } catch {}
  })
  let peakSampled = idle.rssMiB
  let peakBuffered = 0
  let capped = false
  const t0 = Date.now()
  let lastMetric = 0
  while (Date.now() - lastProgress < QUIET_MS && Date.now() - t0 < MAX_STALL_MS) {
    await sleep(SAMPLE_MS)
    const mem = readMem(relay.pid)
    peakSampled = Math.max(peakSampled, mem.rssMiB)
    if (Date.now() - lastMetric >= 500) {
      lastMetric = Date.now()
      peakBuffered = Math.max(peakBuffered, metricValue(await metrics(), 'pos_relay_circuit_buffered_bytes'))
    }
    if (mem.rssMiB > RSS_CAP_MIB) { capped = true; errors.push(`round ${n}: the relay's RSS passed --rss-cap-mib ${RSS_CAP_MIB}: run stopped`); break }
  }
  const stallSeconds = (Date.now() - t0) / 1000
  const heldMem = readMem(relay.pid)
  const text = await metrics()
  peakBuffered = Math.max(peakBuffered, metricValue(text, 'pos_relay_circuit_buffered_bytes'))
  const heldBuffered = metricValue(text, 'pos_relay_circuit_buffered_bytes')
  const heldCircuits = metricValue(text, 'pos_relay_circuits_active')
  const peak = Math.max(heldMem.hwmMiB, peakSampled)
  /** circuits the relay ended while the senders were held, by reason: a stalled circuit must stay open */
  const endedWhileHeld = text.split('\n').filter((l) => l.startsWith('pos_relay_circuit_ends_total{')).map((l) => l.replace('pos_relay_circuit_ends_total', '')).join(', ')
  if (heldCircuits !== opened) errors.push(`round ${n}: only ${heldCircuits} of ${opened} circuits were open when the senders were held (ended: ${endedWhileHeld})`)
  log(`held after ${f(stallSeconds)} s: senders got ${f(sent / MiB)} MiB out; relay RSS ${f(heldMem.rssMiB)}, peak ${f(peak)} MiB; buffered ${f(heldBuffered / MiB)} MiB (peak sampled ${f(peakBuffered / MiB)}); circuits ${heldCircuits}`)

  // close every circuit from the source side; then the relay's RSS once they are gone
  stop = true
  benchClosing = true
  if (closes.size > 0) errors.push(`round ${n}: circuit ends closed before the bench closed them: ${[...closes].map(([k, v]) => `${k} × ${v}`).join('; ')}`)
  for (const s of circuits) s.abort(new Error('bench done'))
  for (const s of atDestinations) s.abort(new Error('bench done'))
  await Promise.race([Promise.all(senders), sleep(10_000)])
  const closeStart = Date.now()
  while (Date.now() - closeStart < 30_000 && metricValue(await metrics(), 'pos_relay_circuits_active') > 0) await sleep(200)
  await sleep(5000)
  const after = readMem(relay.pid)
  const afterCircuits = metricValue(await metrics(), 'pos_relay_circuits_active')
  log(`after close: circuits ${afterCircuits}, RSS ${f(after.rssMiB)} MiB`)
  const bound = idle.rssMiB + BUDGET_MIB + SLACK_MIB
  return {
    opened,
    statuses: [...statuses].map(([k, v]) => `${k} × ${v}`).join(', '),
    heldCircuits,
    idle: idle.rssMiB,
    openIdle: openIdle.rssMiB,
    peak,
    held: heldMem.rssMiB,
    after: after.rssMiB,
    afterCircuits,
    stallSeconds,
    heldBuffered,
    peakBuffered,
    sent,
    capped,
    bound,
    met: !capped && opened === CIRCUITS && heldCircuits === opened && peak <= bound
  }
}

async function main (): Promise<void> {
  const machine = machineInfo()
  const load: Record<string, ReturnType<typeof loadavg>> = { start: loadavg() }
  const rounds: Round[] = []
  for (let i = 1; i <= ROUNDS; i++) {
    rounds.push(await round(i))
    if (rounds.at(-1)!.capped) break
  }
  load.end = loadavg()
  const met = rounds.length === ROUNDS && rounds.every((r) => r.met)
  const worst = rounds.reduce((a, r) => (r.peak - r.bound > a.peak - a.bound ? r : a))
  const sourceCount = Math.ceil(CIRCUITS / PER_SOURCE)
  const destinationCount = Math.ceil(CIRCUITS / PER_DESTINATION)
  const col = (fn: (r: Round) => string): string[] => rounds.map(fn)
  const body = [
    `${CIRCUITS} circuits to destinations that never read, through one relay with the default \`limits.max_buffered_bytes\` (${BUDGET_MIB} MiB) and \`max_circuits\` (1024); ${ROUNDS} rounds, each with a fresh relay. `,
    'Destinations answer STOP by hand and pause their end of the circuit; sources speak HOP by hand, so each circuit carries raw bytes and only the relay can hold a sender back. ',
    `All circuits are opened first (${sourceCount} sources × ${PER_SOURCE}, ${destinationCount} destinations × ${PER_DESTINATION}), then every sender pushes 64 KiB messages until none progressed for ${QUIET_MS / 1000} s (at most ${MAX_STALL_MS / 1000} s). `,
    'The per-IP circuit and connection caps are lifted (every peer dials from 127.0.0.1). RSS is the relay process\'s, from /proc: idle with every peer connected and reserved and no circuit, peak is VmHWM (the kernel\'s high-water mark) or the highest 100 ms sample, after is 5 s after the last circuit closed. The goal is met only if every round meets it.',
    '',
    'What bounds it (relay-image/src/buffer-budget.ts, splice.ts): each circuit\'s yamux receive window is its share of the budget (budget / (4 × open circuits), 64 KiB to 16 MiB: 64 KiB each with 1,024 open), so what the peers may have in flight when the relay stops reading is bounded too; the budget counts held chunks by the buffers they pin. What the relay holds for the circuits is the buffered-bytes row; the rest of the growth is the circuits themselves (streams, V8\'s young generation growing under the burst: see the row before any byte) and memory freed but not returned to the system after 256 KiB per circuit went through to the destinations. TCP only: a QUIC circuit\'s window is quinn\'s (10 MB per stream), which the share does not reach.',
    '',
    '### Result',
    '',
    ...mdTable(['', ...rounds.map((_, i) => `round ${i + 1}`)], [
      ['goal: peak RSS ≤ idle + budget + 64 MiB', ...col((r) => `${r.met ? 'met' : '**not met**'}: ${f(r.peak)} ≤ ${f(r.bound)} MiB`)],
      ['circuits opened (answers)', ...col((r) => `${r.opened} of ${CIRCUITS} (${r.statuses})`)],
      ['circuits still open with the senders held', ...col((r) => `${r.heldCircuits}`)],
      ['relay RSS idle', ...col((r) => `${f(r.idle)} MiB`)],
      ['relay RSS with the circuits open, before any byte', ...col((r) => `${f(r.openIdle)} MiB`)],
      ['relay RSS peak', ...col((r) => `${f(r.peak)} MiB (+${f(r.peak - r.idle)})`)],
      ['relay RSS with the senders held', ...col((r) => `${f(r.held)} MiB after ${f(r.stallSeconds)} s`)],
      ['relay RSS after the circuits closed', ...col((r) => `${f(r.after)} MiB (${r.afterCircuits} circuits left)`)],
      ['buffered bytes (pos_relay_circuit_buffered_bytes), held / highest sampled', ...col((r) => `${f(r.heldBuffered / MiB)} / ${f(r.peakBuffered / MiB)} MiB`)],
      ['bytes the senders got out while nothing was read', ...col((r) => `${f(r.sent / MiB)} MiB (${f(r.opened > 0 ? r.sent / r.opened / 1024 : NaN, 0)} KiB per circuit)`)]
    ]),
    '',
    '### Machine',
    '',
    ...machineTable(machine, { coresNote: 'the relay, the peers and the driver share them; other work ran beside it', loadavg: load, noRedis: true }),
    '',
    ...errorsSection(errors)
  ].join('\n')
  const section = benchSection({
    id: 'stalled',
    title: 'Relay memory with stalled circuits',
    command: `npm run bench:stalled${CIRCUITS !== 1024 ? ` -- --circuits ${CIRCUITS}` : ''}`,
    machine,
    parts: [`${CIRCUITS} circuits to listeners that never read, ${rounds.length} rounds: relay RSS peak ${rounds.map((r) => f(r.peak, 0)).join(' / ')} MiB against idle + ${BUDGET_MIB} + ${SLACK_MIB} = ${rounds.map((r) => f(r.bound, 0)).join(' / ')} MiB: ${met ? 'met' : `not met (worst ${signed(worst.peak - worst.bound, 0)} MiB)`}`, `held buffers ${rounds.map((r) => f(r.heldBuffered / MiB, 0)).join(' / ')} MiB`],
    body
  })
  log(writeSection(opts.out!, section))
  process.stdout.write(body + '\n')
  process.exitCode = met ? 0 : 1
}

try {
  await main()
} catch (err: any) {
  process.stderr.write(`stalled circuits bench failed: ${err?.stack ?? err}\n`)
  process.exitCode = 1
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => {})
}
process.exit()
