/**
 * Where our relay's CPU per relayed GiB goes, and what the cheap data-path
 * levers buy: one run, every arm its own relay process on 127.0.0.1, the
 * transfers interleaved across arms.
 *
 *   npm run bench:relay-cpu      (writes the `relay-cpu` section of docs/benchmarks.md)
 *
 * - Arms: upstream's data path twice (A and A', whose difference is the A/A
 *   noise), one arm per lever of patch noise-tcp-datapath of
 *   @pos-relay/upstream-patches (relay-cpu-process.ts, BENCH_LEVERS), the
 *   yamux frame size, all data-path levers together, and rust-libp2p's relay
 *   (e2e/interop/rust-relay) for the goal "relay CPU per GiB ≤ 2× rust-libp2p's".
 * - Transfer: a rust-libp2p listener reserves, a rust-libp2p dialer sends
 *   BENCH_MIB MiB through the relay (fresh pair and circuit each, DCUtR off).
 * - Figure: relay CPU seconds (utime + stime of the relay process, from
 *   /proc) per GiB relayed. Process CPU time, not throughput: this machine's
 *   2 cores are shared with other work, which changes wall times a lot and CPU
 *   time per byte little.
 * - Profile: V8's sampling profiler (node:inspector in the relay process)
 *   over one warm transfer, for arm A and the all-levers arm.
 *
 * Env: BENCH_MIB (256), BENCH_ROUNDS (5), BENCH_ARMS (names, comma-separated;
 * default all), BENCH_OUT (document, default docs/benchmarks.md; '-' = stdout),
 * BENCH_SAVE (write the raw results there), BENCH_FROM (only re-render them).
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { categoriseProfile, summariseProfile, type ProfileRow } from './lib/cpuprofile.ts'
import { loadavg, machineInfo, type LoadAvg } from './lib/machine.ts'
import { jsonLines, waitForValue } from './lib/poll.ts'
import { interopBinaries, rustRelayedTransfer } from './lib/rust-transfer.ts'
import { killAllProcesses, startProcess, type Process } from './lib/processes.ts'
import { BENCH_DOC, f, machineTable, signed, writeSection } from './lib/report.ts'
import { median } from './lib/stats.ts'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const MIB = Number(process.env.BENCH_MIB ?? 256)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const GIB = MIB / 1024

/** `nodeArgs`: Node/V8 flags of the relay process */
interface Arm { name: string, levers?: string, nodeArgs?: string[], rust?: true, note: string }
const ALL_ARMS: Arm[] = [
  { name: 'A', levers: '', note: 'upstream\'s data path (the relay before tick-writes became its default)' },
  { name: "A'", levers: '', note: 'the same again (A/A noise)' },
  { name: 'writev', levers: 'writev', note: '(a) TCP: socket corked around each sendData(), one writev per Noise message instead of a write per piece' },
  { name: 'tick-writes', levers: 'tickWrites=1048576', note: '(a) TCP: socket corked for the whole tick, one writev per tick, backpressure at 1 MiB queued' },
  { name: 'tick-writes-ofs', levers: 'tickWrites=1048576', nodeArgs: ['--optimize-for-size'], note: '(d) tick-writes with V8\'s --optimize-for-size (a smaller heap: half the RSS per idle reservation, section "reservations")' },
  { name: 'tick-writes-64k', levers: 'tickWrites=65536', note: '(a) tick-writes with backpressure at 64 KiB queued' },
  { name: 'tick-writes-256k', levers: 'tickWrites=262144', note: '(a) tick-writes with backpressure at 256 KiB queued' },
  { name: 'noise-decrypt', levers: 'noiseDecrypt', note: '(b) Noise: no flattening copy (`dst`) of messages that span socket reads' },
  { name: 'noise-batch', levers: 'noiseBatch', note: '(b) Noise: what one tick sends encrypted as full 65519-byte messages, not one message per yamux frame' },
  { name: 'yamux-256k', levers: 'yamux=262156', note: '(c) yamux: frames up to 256 KiB (default 65519 B, one Noise message)' },
  { name: 'all', levers: 'tickWrites,noiseBatch,noiseDecrypt', note: 'tick-writes + noise-batch + noise-decrypt' },
  { name: 'rust-libp2p', rust: true, note: 'rust-libp2p\'s relay (e2e/interop/rust-relay, release build)' }
]
const ARMS = process.env.BENCH_ARMS != null ? ALL_ARMS.filter((a) => process.env.BENCH_ARMS!.split(',').includes(a.name)) : ALL_ARMS
const PROFILED = ['A', 'all'].filter((n) => ARMS.some((a) => a.name === n))

interface Bins { 'rust-peer': string, 'rust-relay': string }
interface Relay { arm: Arm, addr: string, proc: Process }
interface Transfer { cpuS: number, mibPerS: number }

async function startRelay (arm: Arm, bins: Bins): Promise<Relay> {
  if (arm.rust === true) {
    const proc = startProcess(bins['rust-relay'], ['--listen', '/ip4/127.0.0.1/tcp/0', '--max-reservations', '1000'], { timeoutMs: 60 * 60_000 })
    const line = await waitForValue('rust relay address', () => jsonLines(proc.stdout).find((o) => o.role === 'relay'), 30_000)
    return { arm, addr: line.addrs[0], proc }
  }
  const proc = startProcess(process.execPath, [...(arm.nodeArgs ?? []), join(REPO, 'bench/src/relay-cpu-process.ts')], { timeoutMs: 60 * 60_000, env: { BENCH_LEVERS: arm.levers ?? '' } })
  const line = await waitForValue(`relay ${arm.name}`, () => jsonLines(proc.stdout).find((o) => o.ready === true), 30_000)
  const addr = String(line.addrs.find((a: string) => a.includes('/tcp/')))
  return { arm, addr: addr.includes('/p2p/') ? addr : `${addr}/p2p/${line.peerId}`, proc }
}

/** SIGUSR2 to the relay (relay-cpu-process.ts) and the stdout line that answers it */
async function signalProfiler (relay: Relay, answer: (o: any) => boolean): Promise<any> {
  const seen = jsonLines(relay.proc.stdout).filter(answer).length
  process.kill(relay.proc.pid, 'SIGUSR2')
  return await waitForValue('profiler', () => jsonLines(relay.proc.stdout).filter(answer)[seen], 30_000)
}

/** One rust listener + one rust dialer through `relay`, DCUtR off; the relay's CPU seconds over the transfer. */
async function transfer (relay: Relay, bins: Bins): Promise<Transfer> {
  const t = await rustRelayedTransfer({ name: relay.arm.name, addr: relay.addr, proc: relay.proc }, bins['rust-peer'], MIB)
  return { cpuS: t.relayCpuS, mibPerS: t.mibPerS }
}

interface Profiled { categories: ProfileRow[], functions: ProfileRow[], busyMs: number, cpuS: number }
/** a profile row's share of the busy samples, as CPU seconds per GiB: the share × the process's measured CPU per GiB of that transfer */
const sPerGiB = (p: Profiled, r: { pct: number }): number => r.pct / 100 * p.cpuS / GIB

async function profile (relay: Relay, bins: Bins): Promise<Profiled> {
  await signalProfiler(relay, (o) => o.profiling === true)
  const t = await transfer(relay, bins)
  const { profile: file } = await signalProfiler(relay, (o) => o.profile != null)
  try {
    const c = categoriseProfile(file)
    // shares of the busy samples without the profiler's own calls, as the categories'
    const functions = summariseProfile(file, 16).functions.map((r) => ({ ...r, pct: 100 * r.selfMs / c.busyMs }))
    return { categories: c.categories, functions, busyMs: c.busyMs, cpuS: t.cpuS }
  } finally {
    await rm(file, { force: true })
  }
}

const perGiB = (t: Transfer[]): number[] => t.map((x) => x.cpuS / GIB)
const spread = (xs: number[]): string => `${f(Math.min(...xs), 2)}–${f(Math.max(...xs), 2)}`

interface Saved { machine: ReturnType<typeof machineInfo>, load: Record<string, LoadAvg>, transfers: Array<[string, Transfer[]]>, failures: string[], profiles: Array<[string, Profiled]>, minutes: number }

function write (saved: Saved): void {
  const md = report(saved.machine, saved.load, new Map(saved.transfers), saved.failures, new Map(saved.profiles), saved.minutes)
  process.stdout.write(md.body)
  process.stderr.write(writeSection(process.env.BENCH_OUT ?? BENCH_DOC, {
    id: 'relay-cpu',
    title: 'Relay CPU per GiB: profile and data-path levers',
    date: saved.machine.date.slice(0, 10),
    headline: md.headline,
    command: 'npm run bench:relay-cpu',
    body: md.body,
    commit: saved.machine.commit
  }) + '\n')
}

async function main (): Promise<void> {
  // BENCH_FROM=<file>: the section again from a run's saved results (BENCH_SAVE), stamped with that run's commit
  if (process.env.BENCH_FROM != null) { write(JSON.parse(readFileSync(process.env.BENCH_FROM, 'utf8'))); return }
  const t0 = Date.now()
  const bins = await interopBinaries<Bins>()
  const machine = machineInfo()
  const load: Record<string, LoadAvg> = { start: loadavg() }
  const relays = new Map<string, Relay>()
  const transfers = new Map<string, Transfer[]>(ARMS.map((a) => [a.name, []]))
  const failures: string[] = []
  const profiles = new Map<string, Profiled>()
  try {
    for (const arm of ARMS) relays.set(arm.name, await startRelay(arm, bins))
    for (const arm of ARMS) if (arm.rust !== true) await transfer(relays.get(arm.name)!, bins).catch(() => {}) // warm-up (JIT)
    for (let round = 0; round < 2 * ROUNDS; round++) {
      const order = ARMS.map((_, i) => ARMS[(i + round) % ARMS.length]!).filter((a) => transfers.get(a.name)!.length < ROUNDS)
      if (order.length === 0) break
      for (const arm of order) {
        try {
          const t = await transfer(relays.get(arm.name)!, bins)
          transfers.get(arm.name)!.push(t)
          process.stderr.write(`  round ${round + 1} ${arm.name}: ${f(t.cpuS / GIB, 2)} CPU s/GiB, ${f(t.mibPerS)} MiB/s\n`)
        } catch (err: any) {
          failures.push(`${arm.name}: ${String(err.message).slice(0, 200)}`)
          process.stderr.write(`  round ${round + 1} ${arm.name}: FAILED ${err.message}\n`)
        }
      }
    }
    load['after the A/B'] = loadavg()
    for (const name of PROFILED) {
      try { profiles.set(name, await profile(relays.get(name)!, bins)) } catch (err: any) { failures.push(`profile ${name}: ${err.message}`) }
    }
  } finally {
    for (const r of relays.values()) await r.proc.stop('SIGINT')
  }
  load.end = loadavg()
  const saved: Saved = { machine, load, transfers: [...transfers], failures, profiles: [...profiles], minutes: (Date.now() - t0) / 60_000 }
  if (process.env.BENCH_SAVE != null) writeFileSync(process.env.BENCH_SAVE, JSON.stringify(saved))
  write(saved)
}

function report (machine: ReturnType<typeof machineInfo>, load: Record<string, LoadAvg>, transfers: Map<string, Transfer[]>, failures: string[], profiles: Map<string, Profiled>, minutes: number): { body: string, headline: string } {
  const med = (name: string): number => { const t = transfers.get(name); return t != null && t.length > 0 ? median(perGiB(t)) : NaN }
  // the arms and rounds of this run (BENCH_FROM: the saved run's, whatever BENCH_ARMS / BENCH_ROUNDS say now)
  const ARMS = ALL_ARMS.filter((a) => transfers.has(a.name))
  const ROUNDS = Math.max(...[...transfers.values()].map((t) => t.length))
  /** rounds in which `name`'s transfer cost less CPU than A's (the arms' transfers are interleaved, so round i of each ran close in time) */
  const belowA = (name: string): number => { const a = perGiB(transfers.get('A') ?? []); return perGiB(transfers.get(name) ?? []).filter((x, i) => i < a.length && x < a[i]!).length }
  const rounds = (name: string): number => Math.min(transfers.get(name)?.length ?? 0, transfers.get('A')?.length ?? 0)
  const pays = (name: string): boolean => { const xs = perGiB(transfers.get(name) ?? []); return xs.length > 0 && (base - median(xs)) / base > aa && belowA(name) === rounds(name) }
  const base = med('A')
  const aa = Math.abs(med("A'") - base) / base
  const rust = med('rust-libp2p')
  const out: string[] = []
  out.push(`Generated by \`npm run bench:relay-cpu\` (\`node bench/src/relay-cpu.ts\`) on ${machine.date.slice(0, 16).replace('T', ' ')} UTC in ${f(minutes)} min. Do not edit by hand.`, '')
  const quiet = (load.start?.[0] ?? Infinity) < 1
  out.push(...machineTable(machine, { coresNote: quiet ? 'the machine otherwise idle at the start (load average below 1): the bench\'s own processes only' : 'shared with other work on this machine (other sessions ran tests during the run)', noRedis: true, loadavg: load }), '')
  out.push('**Read the CPU figures, not the throughput**: the machine\'s 2 cores are shared with other work, so MiB/s moves with the load; relay CPU seconds per GiB (utime + stime of the relay process over the transfer, from `/proc`) barely does. Every arm is its own relay process, all running at once; the transfers are interleaved (the order rotating each round), so load drifts hit every arm alike.', '')
  const prof = profiles.get('A')
  if (prof != null) {
    const other = profiles.get('all')
    out.push('### Where upstream\'s data path spends its CPU (arm A)', '')
    out.push(`V8's sampling profiler (0.5 ms interval, started and stopped through \`node:inspector\` in the relay process, its own calls left out) over one warm ${MIB} MiB transfer: ${f(prof.busyMs / 1000, 2)} s of busy samples on the main thread while the process used ${f(prof.cpuS, 2)} CPU s (${f(prof.cpuS / GIB, 2)} s per GiB; V8's GC and libuv helper threads included). On a shared machine a sample is wall time (a descheduled thread is still "busy"), so the table gives each category's **share** of the busy samples and, as an estimate, that share of the measured CPU per GiB${other != null ? '; the right-hand columns are the same for the all-levers relay' : ''}.`, '')
    out.push(other != null ? '| category | s per GiB | share | all levers: s per GiB | share |' : '| category | s per GiB | share |', other != null ? '|---|---|---|---|---|' : '|---|---|---|')
    for (const c of prof.categories) {
      const o = other?.categories.find((x) => x.name === c.name)
      out.push(`| ${c.name} | ${f(sPerGiB(prof, c), 2)} | ${f(c.pct)} % |${other != null ? ` ${f(o != null ? sPerGiB(other, o) : 0, 2)} | ${f(o?.pct ?? 0)} % |` : ''}`)
    }
    out.push(`| **process CPU, this transfer** | **${f(prof.cpuS / GIB, 2)}** | 100 % |${other != null ? ` **${f(other.cpuS / GIB, 2)}** | 100 % |` : ''}`)
    out.push('', '| function (arm A) | self s per GiB | share |', '|---|---|---|')
    for (const r of prof.functions.filter((x) => !x.name.includes('node:inspector')).slice(0, 14)) out.push(`| \`${r.name.replace(/\|/g, '\\|')}\` | ${f(sPerGiB(prof, r), 2)} | ${f(r.pct)} % |`)
    out.push('')
  }
  out.push('### A/B: one lever at a time against upstream\'s data path', '')
  out.push(`${ROUNDS} transfers of ${MIB} MiB per arm (after one untimed warm-up each), rust-libp2p peers at both ends. "Δ" is the arm's median against A's. The A/A noise (A' against A, medians) is ${f(aa * 100)} %. The transfers are interleaved, so round i of every arm ran close in time; "below A" counts the rounds in which the arm's transfer cost less than A's in the same round (A' against A is what chance gives). A lever **pays** when its median is below A's by more than the A/A noise and it is below A in every round.`, '')
  out.push('| arm | what | relay CPU s per GiB, median | min–max | Δ vs A | below A (rounds) | pays? | MiB/s, median (context only) |', '|---|---|---|---|---|---|---|---|')
  for (const arm of ARMS) {
    const t = transfers.get(arm.name)!
    if (t.length === 0) { out.push(`| ${arm.name} | ${arm.note} | n/a | | | | | |`); continue }
    const xs = perGiB(t)
    const m = median(xs)
    const d = (m - base) / base
    const verdict = arm.name === 'A' || arm.name === "A'" || arm.rust === true ? '' : (pays(arm.name) ? '**yes**' : 'no')
    const below = arm.name === 'A' ? '' : `${belowA(arm.name)} of ${rounds(arm.name)}`
    out.push(`| ${arm.name} | ${arm.note} | ${f(m, 2)} | ${spread(xs)} | ${arm.name === 'A' ? '' : `${signed(d * 100, 1)} %`} | ${below} | ${verdict} | ${f(median(t.map((x) => x.mibPerS)))} |`)
  }
  out.push('')
  const best = ARMS.filter((a) => a.rust !== true && transfers.get(a.name)!.length > 0).reduce((b, a) => med(a.name) < med(b.name) ? a : b, ARMS[0]!)
  out.push('### Distance to the goal', '')
  out.push(`Goal (issue 14): relay CPU per GiB ≤ 2× rust-libp2p's. In this run rust-libp2p's relay spent ${f(rust, 2)} s per GiB, so the goal is ≤ ${f(2 * rust, 2)} s. Upstream's data path (A) spent ${f(base, 2)} s (${f(base / rust, 2)}× rust); the best arm, ${best.name}, ${f(med(best.name), 2)} s (${f(med(best.name) / rust, 2)}× rust), ${f(med(best.name) - 2 * rust, 2)} s per GiB above the goal.`, '')
  out.push('### Reading it, and the next lever', '')
  out.push(...reading({ arms: ARMS, med, belowA, rounds, pays, base, aa, rust, profiles }), '')
  out.push('### Raw transfers', '', '| arm | relay CPU s per GiB, in order | MiB/s, in order |', '|---|---|---|')
  for (const arm of ARMS) { const t = transfers.get(arm.name)!; out.push(`| ${arm.name} | ${t.map((x) => f(x.cpuS / GIB, 2)).join(', ')} | ${t.map((x) => f(x.mibPerS)).join(', ')} |`) }
  out.push('')
  if (failures.length > 0) out.push('### Failed transfers', '', ...failures.map((e) => `- ${e}`), '')
  const headline = `relay CPU s per GiB (median of ${ROUNDS} × ${MIB} MiB, levers opt-in): upstream data path ${f(base, 2)} (A/A noise ${f(aa * 100)} %), best lever set "${best.name}"${best.name === 'tick-writes' ? ' (now the relay\'s default)' : ''} ${f(med(best.name), 2)}, rust-libp2p ${f(rust, 2)}; ours ${f(med(best.name) / rust, 2)}× rust (goal ≤ 2×)`
  return { body: out.join('\n') + '\n', headline }
}

interface ReadingInput {
  arms: Arm[]
  med: (name: string) => number
  belowA: (name: string) => number
  rounds: (name: string) => number
  pays: (name: string) => boolean
  base: number
  aa: number
  rust: number
  profiles: Map<string, Profiled>
}

/** "Reading it, and the next lever": the verdicts from the figures; the decisions taken on them (tick-writes the relay's default since 2026-12-06) are stated */
function reading ({ arms, med, belowA, rounds, pays, base, aa, rust, profiles }: ReadingInput): string[] {
  const out: string[] = []
  const has = (n: string): boolean => arms.some((a) => a.name === n)
  const less = (n: string): string => `${f((base - med(n)) / base * 100)} %`
  out.push('- **Measured with every lever opt-in, before tickWrites became the relay\'s default**: A and A\' are upstream\'s data path (what the relay ran until then) and each lever arm adds its lever to it. Since then the relay runs tick-writes by default (relay-image/src/data-path.ts; `RelayServer` `dataPath: { tickWrites: false }` gives A\'s path back, and is what arm A now passes), so what the relay spends now is the tick-writes row.')
  const paying = arms.filter((a) => a.levers != null && a.levers !== '' && pays(a.name))
  if (paying.length === 0) out.push(`- No lever paid beyond the A/A noise (${f(aa * 100)} %) in this run. When A and A' differ this much the machine was too busy for a verdict; rerun on a quiet machine (\`BENCH_ARMS=A,A',tick-writes,noise-batch,rust-libp2p BENCH_ROUNDS=9\`).`)
  const all = profiles.get('all')
  const a = profiles.get('A')
  const cat = (p: Profiled | undefined, prefix: string): number => { const c = p?.categories.find((x) => x.name.startsWith(prefix)); return p != null && c != null ? sPerGiB(p, c) : NaN }
  if (has('tick-writes') && !pays('tick-writes')) {
    out.push(`- **tick-writes did not pay beyond the noise in this run**: ${f(med('tick-writes'), 2)} s per GiB against A's ${f(base, 2)} (A/A noise ${f(aa * 100)} %), below A in ${belowA('tick-writes')} of ${rounds('tick-writes')} rounds.`)
  } else if (has('tick-writes')) {
    out.push(`- **tick-writes pays**: ${f(med('tick-writes'), 2)} s per GiB against A's ${f(base, 2)} (${less('tick-writes')} less; A/A noise ${f(aa * 100)} %), below A in ${belowA('tick-writes')} of ${rounds('tick-writes')} rounds, where A' was below A in ${belowA("A'")} of ${rounds("A'")}. One writev per tick instead of a write per piece of each Noise message (length, header, body, tag): in the profiles socket writes fall from ${f(cat(a, 'socket writes'), 2)} (A) to ${f(cat(all, 'socket writes'), 2)} s per GiB (all levers). It is now the relay's default. Its cost is memory: backpressure at 1 MiB queued per connection instead of the socket's 16 KiB, bytes the buffer budget (\`max_buffered_bytes\`) does not count, so the relay's buffer budget now counts what sockets queue beyond 16 KiB (tickWritesQueuedBytes, relay-image/src/buffer-budget.ts): a relay at its budget holds its circuits' reading whether the bytes wait in streams or in sockets.`)
  }
  if (has('noise-batch')) {
    const above = rounds('noise-batch') - belowA('noise-batch')
    out.push(`- **noise-batch does not pay alone**: ${f(med('noise-batch'), 2)} s per GiB (${less('noise-batch')} less than A) but not below A in ${above} of ${rounds('noise-batch')} rounds${has('all') && has('tick-writes') ? `; on top of tick-writes ("all": ${f(med('all'), 2)} against tick-writes' ${f(med('tick-writes'), 2)}) it adds nothing` : ''}. It stays opt-in, as do noise-decrypt and writev (tick-writes does what writev does, for a whole tick).`)
  }
  const now = has('tick-writes') ? med('tick-writes') : base
  out.push(`- **Distance to the goal** (≤ 2× rust-libp2p's relay CPU per GiB): rust-libp2p spent ${f(rust, 2)} s per GiB, so the goal is ≤ ${f(2 * rust, 2)} s. The relay spent ${f(base / rust, 2)}× rust's before and ${f(now / rust, 2)}× with tick-writes (${f(now, 2)} s): ${f(now - 2 * rust, 2)} s per GiB (${f((now - 2 * rust) / now * 100)} % of what it spends now) still to go.`)
  if (all != null) {
    out.push(`- Where the rest goes (the all-levers profile, the profiled arm closest to the new default): Node's ChaCha20-Poly1305 ${f(cat(all, 'ChaCha20-Poly1305: Node'), 2)} s per GiB (a cipher object, update, final and tag per Noise message, both directions), socket writes ${f(cat(all, 'socket writes'), 2)}, stream plumbing ${f(cat(all, 'stream plumbing'), 2)} (events per frame in @libp2p/utils message streams), GC ${f(cat(all, 'garbage collector'), 2)}, Uint8ArrayList ${f(cat(all, 'Uint8ArrayList'), 2)}. rust-libp2p pays the same syscalls and the same cipher without the per-message objects.`)
  }
  out.push(`- **Next lever: the Noise cipher per message.** The cipher work itself is about 1.1 s per GiB relayed (1 GiB decrypted and 1 GiB encrypted at OpenSSL's ChaCha20-Poly1305 speed); the rest of the Node-crypto row is per-message overhead (\`createCipheriv\`/\`createDecipheriv\`, \`setAAD\`, \`final\`, \`getAuthTag\`, a result buffer each). Sealing and opening in place with one reused native context per direction (an N-API binding such as sodium-native's \`crypto_aead_chacha20poly1305_ietf_*\`, behind the same patch seam as the Noise levers) would remove most of it, which on these figures is of the order of the ${f(now - 2 * rust, 2)} s still to go: measure it as one more arm. After it, a native splice for circuits over TCP (decrypt → yamux re-frame → encrypt per relayed stream pair in one N-API module) for the stream plumbing, GC and Uint8ArrayList rows.`)
  return out
}

main().then(() => { killAllProcesses(); process.exit(0) }, (err) => { console.error(err); killAllProcesses(); process.exit(1) })
