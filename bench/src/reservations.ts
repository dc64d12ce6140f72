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
import { KINDS, reserveMany, startRelay, versions, type Bins, type Relay, type RelayKind } from './lib/compared-relays.ts'
import { categoriseProfile, CONNECTION_CATEGORIES, summariseProfile } from './lib/cpuprofile.ts'
import { loadavg, machineInfo } from './lib/machine.ts'
import { readCpuSeconds, readMem } from './lib/proc.ts'
import { killAllProcesses } from './lib/processes.ts'
import { BENCH_DOC, benchSection, errorsSection, f, machineTable, mdTable, writeSection } from './lib/report.ts'
import { interopBinaries } from './lib/rust-transfer.ts'
import { median } from './lib/stats.ts'

const COUNT = Number(process.env.BENCH_RES_COUNT ?? 2000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

interface Sample { seconds: number, cpuS: number, rssKiB: number }
/** a relay and the Node/V8 flags of its process (ours only) */
interface Arm { name: string, kind: RelayKind, nodeArgs?: string[] }
const ARMS: Arm[] = [
  ...KINDS.map((kind) => ({ name: kind, kind })),
  { name: 'pos-relay --optimize-for-size', kind: 'pos-relay', nodeArgs: ['--optimize-for-size'] }
]

/** `COUNT` reservations on `relay` by one rust-peer process; the wall time and the relay's CPU over it */
async function reserve (relay: Relay, bins: Bins): Promise<Sample> {
  await new Promise((resolve) => setTimeout(resolve, 500))
  const rss0 = readMem(relay.proc.pid).rssMiB
  const cpu0 = readCpuSeconds(relay.proc.pid)
  const t0 = Date.now()
  const holder = await reserveMany(relay, bins, COUNT)
  try {
    const seconds = (Date.now() - t0) / 1000
    const cpuS = readCpuSeconds(relay.proc.pid) - cpu0
    await new Promise((resolve) => setTimeout(resolve, 3000)) // settle, as bench:relays
    return { seconds, cpuS, rssKiB: (readMem(relay.proc.pid).rssMiB - rss0) * 1024 / COUNT }
  } finally {
    await holder.stop('SIGINT')
  }
}

async function main (): Promise<void> {
  const bins = await interopBinaries<Bins>()
  const loadBefore = loadavg()
  const samples = new Map<string, Sample[]>(ARMS.map((a) => [a.name, []]))
  const errors: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    for (const arm of ARMS.map((_, i) => ARMS[(i + round) % ARMS.length]!)) {
      const relay = await startRelay(arm.kind, bins, arm.nodeArgs ?? [], COUNT + 1000)
      try {
        const s = await reserve(relay, bins)
        samples.get(arm.name)!.push(s)
        process.stderr.write(`  round ${round + 1} ${arm.name}: ${COUNT} reservations in ${f(s.seconds, 2)} s, relay CPU ${f(s.cpuS, 2)} s, RSS +${f(s.rssKiB)} KiB each\n`)
      } catch (err: any) {
        errors.push(`round ${round + 1} ${arm.name}: ${String(err.message).slice(0, 200)}`)
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
  const med = (arm: string, key: keyof Sample): number => median(samples.get(arm)!.map((s) => s[key]))
  const per1000 = (x: number): number => x * 1000 / COUNT
  const rows = ARMS.map((a) => [a.name, samples.get(a.name)!.length, f(per1000(med(a.name, 'seconds')), 2), f(per1000(med(a.name, 'cpuS')), 2), f(med(a.name, 'seconds') / med('rust-libp2p', 'seconds'), 2) + '×', f(med(a.name, 'rssKiB'))])
  const body = [
    ...machineTable(m, { coresNote: 'shared by the relay and the rust reserver (and other work on this machine)', noRedis: true, loadavg: { before: loadBefore, after: loadavg() }, extraRows: KINDS.map((k): [string, string] => [`${k} relay`, v[k]]) }),
    '',
    ...mdTable(['relay', 'rounds', 'wall s per 1,000 reservations (median)', 'relay CPU s per 1,000 reservations (median)', 'wall time / rust-libp2p\'s'], rows),
    '',
    `Method: a fresh process of each relay per round, ${ROUNDS} rounds interleaved (the order rotating); \`rust-peer --mode reserve-many --count ${COUNT}\` makes the reservations (each its own identity, TCP connection, Noise XX handshake, Yamux session, identify and RESERVE); wall time until it reports all held, relay CPU = utime + stime over the same span; RSS per reservation = (VmRSS 3 s after the last one − VmRSS before the first) / count. V8's flag --optimize-for-size (a smaller heap, collected more eagerly) is given to our relay's process in its own row. The relays' limits are \`bench:relays\`'s (section "relays"). The reserver shares the 2 cores, so the wall time of a relay that needs less CPU is partly the reserver's.`,
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
  const ofs = 'pos-relay --optimize-for-size'
  const ours = samples.get('pos-relay')!.length > 0 && samples.get('rust-libp2p')!.length > 0 && samples.get('go-libp2p')!.length > 0
  const parts = ours
    ? [`wall s per 1,000 reservations: ours ${f(per1000(med('pos-relay', 'seconds')), 2)}, rust ${f(per1000(med('rust-libp2p', 'seconds')), 2)}, go ${f(per1000(med('go-libp2p', 'seconds')), 2)} (${f(med('pos-relay', 'seconds') / med('rust-libp2p', 'seconds'), 2)}× rust; goal ≤ 2×); our relay CPU ${f(per1000(med('pos-relay', 'cpuS')), 2)} s per 1,000`,
        `RSS per reservation: ours ${f(med('pos-relay', 'rssKiB'))} KiB, with --optimize-for-size ${samples.get(ofs)!.length > 0 ? f(med(ofs, 'rssKiB')) : 'n/a'}, rust ${f(med('rust-libp2p', 'rssKiB'))}, go ${f(med('go-libp2p', 'rssKiB'))} (goal ≤ go's)`]
    : []
  process.stderr.write(writeSection(process.env.BENCH_OUT ?? BENCH_DOC, benchSection({ id: 'reservations', title: 'Reservations: time and relay CPU per 1,000, and where ours goes', command: 'npx node bench/src/reservations.ts', machine: m, parts, body })) + '\n')
}

main().then(() => process.exit(0), (err) => { killAllProcesses(); process.stderr.write(`${err.stack ?? err}\n`); process.exit(1) })
