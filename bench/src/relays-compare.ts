/**
 * Side-by-side relay benchmark: our relay (`pos-relay run`) vs rust-libp2p's
 * and go-libp2p's Circuit Relay v2 servers (small binaries from
 * e2e/interop/, built and cached by e2e/interop/build.sh), in one run, each
 * relay in its own process on 127.0.0.1.
 *
 *   npx tsc -b && npx node bench/src/relays-compare.ts      (writes the `relays` section of docs/benchmarks.md)
 *
 * Measured per relay:
 * - relayed throughput (MiB/s): one rust-libp2p dialer sends BENCH_MIB MiB to
 *   one rust-libp2p listener through the relay (a fresh pair and circuit per
 *   transfer, DCUtR off), BENCH_ROUNDS rounds interleaved across the relays;
 * - relay CPU seconds per GiB relayed (utime + stime from /proc/<pid>/stat
 *   over the transfers);
 * - relay RSS (VmRSS) idle, with 1,000 and with 5,000 idle reservations, held
 *   by `rust-peer --mode reserve-many` (N identities, one connection and one
 *   reservation each, from one process);
 * - our relay's CPU profile during one transfer (node --cpu-prof).
 *
 * Env: BENCH_MIB (256), BENCH_ROUNDS (3), BENCH_RESERVATIONS ("1000,5000"),
 * BENCH_SKIP_PROFILE=1, BENCH_OUT (the document to write the section into,
 * default docs/benchmarks.md; '-' = stdout only). Bounded: every child has a timeout, and all are
 * stopped at the end, on error and on Ctrl-C.
 */
import { interopBinaries, rustRelayedTransfer } from './lib/rust-transfer.ts'
import { killAllProcesses, type Process } from './lib/processes.ts'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { summariseProfile, type ProfileSummary } from './lib/cpuprofile.ts'
import { loadavg, machineInfo, type LoadAvg } from './lib/machine.ts'
import { readMem } from './lib/proc.ts'
import { BENCH_DOC, f, machineTable, writeSection } from './lib/report.ts'
import { KINDS, reserveMany, startRelay as startComparedRelay, versions, type Bins, type Relay, type RelayKind } from './lib/compared-relays.ts'
import { median } from './lib/stats.ts'

const run = promisify(execFile)
const MIB = Number(process.env.BENCH_MIB ?? 256)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const RESERVATION_STEPS = (process.env.BENCH_RESERVATIONS ?? '1000,5000').split(',').map(Number)
const MAX_RES = Math.max(...RESERVATION_STEPS) + 1000
const startRelay = async (kind: RelayKind, bins: Bins, nodeArgs: string[] = []): Promise<Relay> => await startComparedRelay(kind, bins, nodeArgs, MAX_RES)

// ---- measurements ---------------------------------------------------------------

interface Transfer { mibPerS: number, relayCpuS: number, ms: number }

/** One rust listener + one rust dialer through `relay`, DCUtR off. Rejects when the transfer fails or stalls (60 s). */
async function transfer (relay: Relay, bins: Bins): Promise<Transfer> {
  return await rustRelayedTransfer({ name: relay.kind, addr: relay.addr, proc: relay.proc }, bins['rust-peer'], MIB)
}

interface RssResult { idleMiB: number, steps: Array<{ reservations: number, rssMiB: number, seconds: number }> }

async function reservations (relay: Relay, bins: Bins): Promise<RssResult> {
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const idleMiB = readMem(relay.proc.pid).rssMiB
  const steps: RssResult['steps'] = []
  const holders: Process[] = []
  let held = 0
  try {
    for (const target of RESERVATION_STEPS) {
      const count = target - held
      const t0 = Date.now()
      holders.push(await reserveMany(relay, bins, count))
      held = target
      const seconds = (Date.now() - t0) / 1000
      await new Promise((resolve) => setTimeout(resolve, 3000)) // settle
      steps.push({ reservations: target, rssMiB: readMem(relay.proc.pid).rssMiB, seconds })
      process.stderr.write(`  ${relay.kind}: ${target} reservations, RSS ${steps.at(-1)!.rssMiB.toFixed(1)} MiB (${seconds.toFixed(1)} s to reserve ${count})\n`)
    }
  } finally {
    for (const h of holders) await h.stop('SIGINT')
  }
  return { idleMiB, steps }
}

async function profileOurs (bins: Bins): Promise<(ProfileSummary & { completed: boolean, attempts: number }) | undefined> {
  // up to 3 attempts, each a fresh relay process: a stalled transfer would make a profile of mostly idle time
  let last: (ProfileSummary & { completed: boolean, attempts: number }) | undefined
  for (let attempt = 1; attempt <= 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'pos-relay-cmp-prof-'))
    try {
      const relay = await startRelay('pos-relay', bins, ['--cpu-prof', '--cpu-prof-dir', dir])
      let completed = true
      try {
        await transfer(relay, bins)
      } catch (err: any) {
        completed = false
        process.stderr.write(`  profiled transfer ${attempt} failed: ${err.message}\n`)
      } finally {
        await relay.proc.stop('SIGINT')
      }
      const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'))
      if (file != null) last = { ...summariseProfile(join(dir, file), 12), completed, attempts: attempt }
      if (completed) return last
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }
  return last
}

// ---- report -------------------------------------------------------------------

async function main (): Promise<void> {
  const t0 = Date.now()
  const bins = await interopBinaries<Bins>()
  const machine = machineInfo()
  const load: Record<string, LoadAvg> = { start: loadavg() }
  const rustc = await run('rustc', ['--version']).then((r) => r.stdout.trim(), () => '?')
  const gover = await run('go', ['version']).then((r) => r.stdout.trim(), () => '?')

  const transfers = new Map<RelayKind, Transfer[]>(KINDS.map((k) => [k, []]))
  const failures = new Map<RelayKind, string[]>(KINDS.map((k) => [k, []]))
  const rss = new Map<RelayKind, RssResult>()
  const relays = new Map<RelayKind, Relay>()
  try {
    for (const k of KINDS) relays.set(k, await startRelay(k, bins))
    process.stderr.write(`throughput: ${ROUNDS} rounds × ${MIB} MiB per relay, interleaved\n`)
    await transfer(relays.get('pos-relay')!, bins).catch(() => {}) // warm-up (JIT)
    // a failed or stalled transfer is recorded and the relay gets another try, up to 2 × ROUNDS attempts
    for (let round = 0; round < 2 * ROUNDS; round++) {
      const order = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]!).filter((k) => transfers.get(k)!.length < ROUNDS)
      if (order.length === 0) break
      for (const k of order) {
        try {
          const t = await transfer(relays.get(k)!, bins)
          transfers.get(k)!.push(t)
          process.stderr.write(`  round ${round + 1} ${k}: ${f(t.mibPerS)} MiB/s, relay CPU ${f(t.relayCpuS, 2)} s\n`)
        } catch (err: any) {
          failures.get(k)!.push(String(err.message).slice(0, 200))
          process.stderr.write(`  round ${round + 1} ${k}: FAILED ${err.message}\n`)
        }
      }
    }
    for (const k of KINDS) await relays.get(k)!.proc.stop('SIGINT')
    // a fresh process per relay, so "idle" is idle and not what the transfers left behind
    for (const k of KINDS) {
      process.stderr.write(`reservations on a fresh ${k} ...\n`)
      const relay = await startRelay(k, bins)
      relays.set(k, relay)
      rss.set(k, await reservations(relay, bins))
      await relay.proc.stop('SIGINT')
    }
  } finally {
    for (const r of relays.values()) await r.proc.stop('SIGKILL')
  }
  load['after transfers and reservations'] = loadavg()
  const profile = process.env.BENCH_SKIP_PROFILE === '1' ? undefined : await profileOurs(bins)
  load.end = loadavg()

  const v = versions()
  const out: string[] = []
  out.push(`Generated by \`npx node bench/src/relays-compare.ts\` on ${machine.date.slice(0, 16).replace('T', ' ')} UTC in ${f((Date.now() - t0) / 60_000)} min. Do not edit by hand.`, '')
  out.push('### Machine and versions', '')
  out.push(...machineTable(machine, {
    coresNote: 'shared with other work on this machine',
    noRedis: true,
    loadavg: load,
    extraRows: [
      ...KINDS.map((k): [string, string] => [`${k} relay`, v[k]]),
      ['peers (both ends, every relay)', `rust-libp2p \`e2e/interop/rust-peer\` (same versions as the rust relay), ${rustc}`],
      ['go toolchain', gover]
    ]
  }), '')
  out.push('### Results', '')
  out.push('| relay | relayed throughput, MiB/s (median; min–max) | failed transfers | relay CPU s per GiB relayed | RSS idle | RSS, 1,000 idle reservations | RSS, 5,000 idle reservations | per reservation | time to make 5,000 reservations |')
  out.push('|---|---|---|---|---|---|---|---|---|')
  for (const k of KINDS) {
    const t = transfers.get(k)!
    const tp = t.map((x) => x.mibPerS)
    const cpuPerGiB = t.reduce((s, x) => s + x.relayCpuS, 0) / (t.length * MIB / 1024)
    const r = rss.get(k)
    const step = (n: number): { rssMiB: number, seconds: number } | undefined => r?.steps.find((s) => s.reservations === n)
    const s1 = step(1000)
    const s5 = step(5000)
    const per = s5 != null && r != null ? ((s5.rssMiB - r.idleMiB) * 1024 / 5000) : NaN
    const makeAll = r != null ? r.steps.reduce((s, x) => s + x.seconds, 0) : NaN
    const failed = failures.get(k)!.length
    out.push(`| **${k}** | ${f(median(tp))} (${f(Math.min(...tp))}–${f(Math.max(...tp))}) | ${failed > 0 ? `**${failed} of ${failed + t.length}**` : '0'} | ${f(cpuPerGiB, 2)} | ${f(r?.idleMiB ?? NaN)} MiB | ${f(s1?.rssMiB ?? NaN)} MiB | ${f(s5?.rssMiB ?? NaN)} MiB | ${f(per)} KiB | ${f(makeAll)} s |`)
  }
  out.push('')
  const cpuOf = (k: RelayKind): number => { const t = transfers.get(k)!; return t.reduce((s, x) => s + x.relayCpuS, 0) / (t.length * MIB / 1024) }
  const perRes = (k: RelayKind): number => { const r = rss.get(k); const s5 = r?.steps.find((x) => x.reservations === Math.max(...RESERVATION_STEPS)); return s5 != null && r != null ? (s5.rssMiB - r.idleMiB) / s5.reservations : NaN }
  out.push(`Where we stand: pos-relay spends ${f(cpuOf('pos-relay') / cpuOf('rust-libp2p'))}× the CPU per GiB relayed of rust-libp2p's relay (${f(cpuOf('pos-relay') / cpuOf('go-libp2p'))}× go-libp2p's) and ` +
    `${f(perRes('pos-relay') / perRes('rust-libp2p'))}× its memory per idle reservation (${f(perRes('pos-relay') / perRes('go-libp2p'))}× go-libp2p's). ` +
    'Every relayed byte costs the relay one Noise decryption and one encryption (its two hops) plus Yamux framing; the profile below shows where our time goes.', '')
  out.push('### How', '')
  out.push('- Each relay runs in its own process on 127.0.0.1: ours is `node packages/cli/bin/pos-relay.js run --config …` (a config from `pos-relay init`); rust\'s and go\'s are `e2e/interop/rust-relay` and `e2e/interop/go-relay` (built by `e2e/interop/build.sh`, release/optimized).')
  out.push('- **Limits**: each relay\'s defaults, except what the benchmark would trip over. Ours: `max_reservations` ' + MAX_RES + ', no per-IP connection cap, per-peer rate limits off and the per-IP connection rate at 1,000,000/s (every client is 127.0.0.1). ' +
    'rust-libp2p: ' + MAX_RES + ' reservations, 1024 circuits, 1 h / 4 GiB per circuit, no rate limiters (defaults: 128 reservations, 2 min / 128 KiB per circuit). ' +
    'go-libp2p: ' + MAX_RES + ' reservations (also per IP and per ASN), 1 h / 4 GiB per circuit, unlimited resource manager, no connection manager (defaults: 128 reservations, 8 per IP, 2 min / 128 KiB per circuit; its relay copy buffer stays at the default 2 KiB).')
  out.push(`- **Throughput**: a rust-libp2p listener reserves on the relay, a rust-libp2p dialer dials \`<relay>/p2p-circuit/p2p/<listener>\` and sends ${MIB} MiB on one stream; the time runs from opening the stream until the listener's reply (byte count + SHA-256, checked). DCUtR is off. A fresh pair and circuit per transfer; ${ROUNDS} rounds, one transfer per relay per round, the order rotating; one untimed warm-up transfer through ours first. The peers are rust because they are the cheapest of the three implementations, but on 2 cores they are not free: every relayed byte is Noise-encrypted twice by the dialer (end-to-end + hop) and decrypted twice by the listener, and the relay decrypts and re-encrypts it once (its two hops), so the three processes share the two cores and throughput is a whole-system number. **CPU seconds per GiB** (relay utime + stime from \`/proc/<pid>/stat\` over the transfers) is the fairer comparison of the relays.`)
  out.push('- **RSS**: a fresh relay process per relay (not the one that did the transfers); VmRSS before any reservation, then after `rust-peer --mode reserve-many` holds 1,000 and then 5,000 reservations (one identity, TCP connection, Noise + Yamux session and reservation each, idle apart from identify and ping), 3 s after the last one was accepted. "Per reservation" = (RSS at 5,000 − idle RSS) / 5,000.')
  out.push('')
  if (profile != null) {
    out.push('### Where our relay\'s CPU goes', '')
    out.push(`\`node --cpu-prof\` of our relay during one ${MIB} MiB relayed transfer (self time; ${f(profile.busyMs / 1000, 2)} s busy of ${f(profile.totalMs / 1000, 2)} s sampled on the main thread, start-up included)${profile.completed ? (profile.attempts > 1 ? `; the first completed of ${profile.attempts} attempts, the others stalled` : '') : `. **All ${profile.attempts} profiled transfers stalled**, so this covers only the part that ran before the stall`}.`, '')
    out.push('| package | self time | share of busy |', '|---|---|---|')
    for (const p of profile.packages.slice(0, 10)) out.push(`| ${p.name} | ${f(p.selfMs / 1000, 2)} s | ${f(p.pct)} % |`)
    out.push('', '| function | self time | share of busy |', '|---|---|---|')
    for (const p of profile.functions.slice(0, 12)) out.push(`| \`${p.name.replace(/\|/g, '\\|')}\` | ${f(p.selfMs / 1000, 2)} s | ${f(p.pct)} % |`)
    out.push('', 'Reading it: `writeBuffer` is Node writing to the sockets (one write per Noise frame); `createCipherBase`, `getKeyObjectSlots`, `getSlots`, `update` and `final` ' +
      'are Node\'s crypto setting up and running a ChaCha20-Poly1305 cipher per Noise message (a new cipher object per frame, in each direction, on both hops); GC and `uint8arraylist` are the ' +
      'per-frame buffers (@chainsafe/libp2p-noise calls `crypto.createCipheriv` / `createDecipheriv` for every message).', '')
  }
  out.push('### Raw transfers', '', '| relay | transfer | MiB/s | relay CPU s |', '|---|---|---|---|')
  for (const k of KINDS) transfers.get(k)!.forEach((t, i) => out.push(`| ${k} | ${i + 1} | ${f(t.mibPerS)} | ${f(t.relayCpuS, 2)} |`))
  out.push('')
  if ([...failures.values()].some((x) => x.length > 0)) {
    out.push('### Failed transfers', '', 'A transfer fails when the dialer does not get the listener\'s checked reply within 60 s (a stalled circuit). It is not retried silently: it is listed here and the relay gets another attempt.', '')
    for (const k of KINDS) for (const e of failures.get(k)!) out.push(`- ${k}: ${e}`)
    out.push('')
  }
  const md = out.join('\n') + '\n'
  process.stdout.write(md)
  const ratio = (a: number, b: number): string => `${f(a / b)}×`
  process.stderr.write(writeSection(process.env.BENCH_OUT ?? BENCH_DOC, {
    id: 'relays',
    title: 'Our relay next to rust-libp2p\'s and go-libp2p\'s relays',
    date: machine.date.slice(0, 10),
    headline: `relayed MiB/s (median) pos-relay ${f(median(transfers.get('pos-relay')!.map((x) => x.mibPerS)))}, rust-libp2p ${f(median(transfers.get('rust-libp2p')!.map((x) => x.mibPerS)))}, go-libp2p ${f(median(transfers.get('go-libp2p')!.map((x) => x.mibPerS)))}; ours uses ${ratio(cpuOf('pos-relay'), cpuOf('rust-libp2p'))} rust-libp2p's CPU per GiB and ${ratio(perRes('pos-relay'), perRes('rust-libp2p'))} its memory per idle reservation`,
    command: 'npm run bench:relays',
    body: md,
    commit: machine.commit
  }) + '\n')
}

main().then(() => { killAllProcesses(); process.exit(0) }, (err) => { console.error(err); killAllProcesses(); process.exit(1) })
