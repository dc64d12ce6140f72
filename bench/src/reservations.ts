/**
 * What a reservation costs each relay, side by side in one run, and where our
 * relay's CPU goes while it accepts them.
 *
 *   npx tsc -b && npx node bench/src/reservations.ts      (writes the `reservations` section of docs/benchmarks.md)
 *
 * Each round starts a fresh process of every relay (ours, rust-libp2p's,
 * go-libp2p's; bench/src/lib/compared-relays.ts) and has `rust-peer --mode
 * reserve-many` make BENCH_RES_COUNT reservations on it (one identity, TCP
 * connection, Noise XX handshake, Yamux session, identify and RESERVE each,
 * from one process); the rounds interleave the relays, the order rotating.
 * Measured: the wall time until all are held, and the relay's CPU (utime +
 * stime from /proc) over it. Then one more run of ours under `node
 * --cpu-prof`, its self time grouped by what it is (CONNECTION_CATEGORIES).
 *
 * Env: BENCH_RES_COUNT (2000), BENCH_ROUNDS (3), BENCH_OUT (document; '-' =
 * stdout only). Bounded: every child has a timeout and is stopped at the end.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KINDS, startRelay, versions, type Bins, type Relay, type RelayKind } from './lib/compared-relays.ts'
import { categoriseProfile, CONNECTION_CATEGORIES, summariseProfile } from './lib/cpuprofile.ts'
import { loadavg, machineInfo } from './lib/machine.ts'
import { jsonLines, waitForValue } from './lib/poll.ts'
import { readCpuSeconds } from './lib/proc.ts'
import { killAllProcesses, startProcess } from './lib/processes.ts'
import { BENCH_DOC, benchSection, errorsSection, f, machineTable, mdTable, writeSection } from './lib/report.ts'
import { interopBinaries } from './lib/rust-transfer.ts'
import { median } from './lib/stats.ts'

const COUNT = Number(process.env.BENCH_RES_COUNT ?? 2000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

interface Sample { seconds: number, cpuS: number }

/** `COUNT` reservations on `relay` by one rust-peer process; the wall time and the relay's CPU over it */
async function reserve (relay: Relay, bins: Bins): Promise<Sample> {
  await new Promise((resolve) => setTimeout(resolve, 500))
  const cpu0 = readCpuSeconds(relay.proc.pid)
  const t0 = Date.now()
  const holder = startProcess(bins['rust-peer'], ['--mode', 'reserve-many', '--relay', relay.addr, '--count', String(COUNT), '--timeout-ms', '240000'], { timeoutMs: 5 * 60_000 })
  try {
    const line = await waitForValue(`${COUNT} reservations on ${relay.kind}`, () => jsonLines(holder.stdout).find((o) => o.role === 'reserver'), 250_000)
    const seconds = (Date.now() - t0) / 1000
    const cpuS = readCpuSeconds(relay.proc.pid) - cpu0
    if (line.reserved !== COUNT) throw new Error(`${relay.kind}: only ${line.reserved}/${COUNT} reservations (${line.error})`)
    return { seconds, cpuS }
  } finally {
    await holder.stop('SIGINT')
  }
}

async function main (): Promise<void> {
  const bins = await interopBinaries<Bins>()
  const loadBefore = loadavg()
  const samples = new Map<RelayKind, Sample[]>(KINDS.map((k) => [k, []]))
  const errors: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    for (const k of KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]!)) {
      const relay = await startRelay(k, bins, [], COUNT + 1000)
      try {
        const s = await reserve(relay, bins)
        samples.get(k)!.push(s)
        process.stderr.write(`  round ${round + 1} ${k}: ${COUNT} reservations in ${f(s.seconds, 2)} s, relay CPU ${f(s.cpuS, 2)} s\n`)
      } catch (err: any) {
        errors.push(`round ${round + 1} ${k}: ${String(err.message).slice(0, 200)}`)
      } finally {
        await relay.proc.stop('SIGINT')
      }
    }
  }
  // one more run of ours, profiled (the profiler costs time: not in the table above)
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-res-prof-'))
  let profile: ReturnType<typeof categoriseProfile> | undefined
  let functions: ReturnType<typeof summariseProfile>['functions'] = []
  try {
    const relay = await startRelay('pos-relay', bins, ['--cpu-prof', '--cpu-prof-dir', dir], COUNT + 1000)
    try { await reserve(relay, bins) } finally { await relay.proc.stop('SIGINT') }
    const file = (await readdir(dir)).find((x) => x.endsWith('.cpuprofile'))
    if (file != null) {
      profile = categoriseProfile(join(dir, file), CONNECTION_CATEGORIES)
      functions = summariseProfile(join(dir, file), 12).functions
    }
  } catch (err: any) {
    errors.push(`profiled run: ${String(err.message).slice(0, 200)}`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  killAllProcesses()

  const m = machineInfo()
  const v = versions()
  const med = (k: RelayKind, key: keyof Sample): number => median(samples.get(k)!.map((s) => s[key]))
  const per1000 = (x: number): number => x * 1000 / COUNT
  const rows = KINDS.map((k) => [k, samples.get(k)!.length, f(per1000(med(k, 'seconds')), 2), f(per1000(med(k, 'cpuS')), 2), f(med(k, 'seconds') / med('rust-libp2p', 'seconds'), 2) + '×'])
  const body = [
    ...machineTable(m, { coresNote: 'shared by the relay and the rust reserver (and other work on this machine)', noRedis: true, loadavg: { before: loadBefore, after: loadavg() }, extraRows: KINDS.map((k): [string, string] => [`${k} relay`, v[k]]) }),
    '',
    ...mdTable(['relay', 'rounds', 'wall s per 1,000 reservations (median)', 'relay CPU s per 1,000 reservations (median)', 'wall time / rust-libp2p\'s'], rows),
    '',
    `Method: a fresh process of each relay per round, ${ROUNDS} rounds interleaved (the order rotating); \`rust-peer --mode reserve-many --count ${COUNT}\` makes the reservations (each its own identity, TCP connection, Noise XX handshake, Yamux session, identify and RESERVE); wall time until it reports all held, relay CPU = utime + stime over the same span. The relays' limits are \`bench:relays\`'s (section "relays"). The reserver shares the 2 cores, so the wall time of a relay that needs less CPU is partly the reserver's.`,
    '',
    ...(profile != null
      ? [
          '### Where our relay\'s CPU goes while accepting reservations', '',
          `\`node --cpu-prof\` of one more run of ours (${COUNT} reservations; ${f(profile.busyMs / 1000, 2)} s busy on the main thread, start-up included), self time by what it is:`, '',
          ...mdTable(['what', 'self time s', 'share of busy'], profile.categories.map((c) => [c.name, f(c.selfMs / 1000, 2), `${f(c.pct)} %`])),
          '', 'Top functions:', '',
          ...mdTable(['function', 'self time s', 'share of busy'], functions.map((x) => [`\`${x.name.replace(/\|/g, '\\|')}\``, f(x.selfMs / 1000, 2), `${f(x.pct)} %`]))
        ]
      : []),
    ...(errors.length > 0 ? ['', ...errorsSection(errors)] : [])
  ].join('\n')
  const ours = samples.get('pos-relay')!.length > 0 && samples.get('rust-libp2p')!.length > 0
  const parts = ours ? [`wall s per 1,000 reservations: ours ${f(per1000(med('pos-relay', 'seconds')), 2)}, rust ${f(per1000(med('rust-libp2p', 'seconds')), 2)}, go ${f(per1000(med('go-libp2p', 'seconds')), 2)} (${f(med('pos-relay', 'seconds') / med('rust-libp2p', 'seconds'), 2)}× rust; goal ≤ 2×); our relay CPU ${f(per1000(med('pos-relay', 'cpuS')), 2)} s per 1,000`] : []
  process.stderr.write(writeSection(process.env.BENCH_OUT ?? BENCH_DOC, benchSection({ id: 'reservations', title: 'Reservations: time and relay CPU per 1,000, and where ours goes', command: 'npx node bench/src/reservations.ts', machine: m, parts, body })) + '\n')
}

main().then(() => process.exit(0), (err) => { killAllProcesses(); process.stderr.write(`${err.stack ?? err}\n`); process.exit(1) })
