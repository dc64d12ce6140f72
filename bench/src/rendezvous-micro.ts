/**
 * Micro-benchmark of discovery's ?for= ranking (issue 17): ns per relay to pick the top 3 of
 * 1,000 and 10,000 relays for a key, three implementations side by side in one process, rounds
 * interleaved (so machine load hits them alike), each round a fresh key:
 * - plain: rankRelays(relays, key).slice(0, 3), the reference (createHash per relay, BigInt, full sort);
 * - before: topRelays as it was at 299081a (crypto.hash into a reused buffer, Buffer digest, splice);
 * - now: topRelays (per-list buffer of peer_id || 0x00 || key, digest as a latin1 string, two uint32, typed top-N).
 * All three must give the same answer for every key (checked). No answer cache here: every call ranks.
 *
 *   npm run bench:rendezvous-micro [-- --rounds 15] [-- --out docs/benchmarks.md | -]
 */
import { hash } from 'node:crypto'
import { parseArgs } from 'node:util'
import { rankRelays, topRelays } from '@pos-relay/shared'
import { loadavg, machineInfo, type LoadAvg } from './lib/machine.ts'
import { BENCH_DOC, benchSection, f, machineTable, mdTable, writeSection } from './lib/report.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' }, out: { type: 'string', default: BENCH_DOC } } })
const ROUNDS = Number(values.rounds)
const SIZES = [1000, 10_000]
const COUNT = 3
const log = (s: string): void => { process.stderr.write(`${s}\n`) }

// topRelays at 299081a, kept here for the comparison
const SEPARATOR = Buffer.from([0])
const prefixesOf = new WeakMap<readonly unknown[], Buffer[]>()
function topRelaysBefore<T extends { peer_id: string }> (relays: readonly T[], key: string, count: number): T[] {
  let prefixes = prefixesOf.get(relays)
  if (prefixes === undefined) {
    prefixes = relays.map((r) => Buffer.concat([Buffer.from(r.peer_id, 'utf8'), SEPARATOR]))
    prefixesOf.set(relays, prefixes)
  }
  const k = Buffer.from(key, 'utf8')
  const buf = Buffer.allocUnsafe(Math.max(0, ...prefixes.map((p) => p.length)) + k.length)
  const best: Array<{ i: number, hi: number, lo: number }> = []
  const before = (a: { i: number, hi: number, lo: number }, b: { i: number, hi: number, lo: number }): boolean =>
    a.hi !== b.hi ? a.hi > b.hi : a.lo !== b.lo ? a.lo > b.lo : Buffer.compare(prefixes[a.i]!, prefixes[b.i]!) <= 0
  for (let i = 0; i < relays.length && count > 0; i++) {
    const p = prefixes[i]!
    p.copy(buf, 0)
    k.copy(buf, p.length)
    const d = hash('sha256', buf.subarray(0, p.length + k.length), 'buffer') as unknown as Buffer
    const entry = { i, hi: d.readUInt32BE(0), lo: d.readUInt32BE(4) }
    if (best.length === count && !before(entry, best[count - 1]!)) continue
    let at = best.length
    while (at > 0 && !before(best[at - 1]!, entry)) at--
    best.splice(at, 0, entry)
    if (best.length > count) best.pop()
  }
  return best.map(({ i }) => relays[i]!)
}

type Impl = (relays: ReadonlyArray<{ id: string, peer_id: string }>, key: string) => Array<{ id: string }>
const IMPLS: Record<string, Impl> = {
  plain: (relays, key) => rankRelays(relays, key).slice(0, COUNT),
  before: (relays, key) => topRelaysBefore(relays, key, COUNT),
  now: (relays, key) => topRelays(relays, key, COUNT)
}

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
// the shape of Ed25519 peer ids in base58btc (52 characters); the ranking only hashes the strings
const peerId = (): string => `12D3KooW${Array.from({ length: 44 }, () => B58[Math.floor(Math.random() * 58)]).join('')}`
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]! }

function main (): void {
  const machine = machineInfo()
  const load: Record<string, LoadAvg> = { start: loadavg() }
  const rows: Array<{ relays: number, impl: string, median: number, min: number }> = []
  for (const size of SIZES) {
    const relays = Array.from({ length: size }, (_, i) => ({ id: `relay-${i}`, peer_id: peerId() }))
    const calls = Math.max(1, Math.round(20_000 / size))
    const ns: Record<string, number[]> = Object.fromEntries(Object.keys(IMPLS).map((k) => [k, []]))
    // warm up (JIT, the per-list buffers), and check the answers agree
    for (let w = 0; w < 3; w++) {
      const key = peerId()
      const answers = Object.values(IMPLS).map((impl) => JSON.stringify(impl(relays, key).map((r) => r.id)))
      if (new Set(answers).size !== 1) throw new Error(`implementations disagree for ${key}: ${answers.join(' ')}`)
    }
    for (let r = 0; r < ROUNDS; r++) {
      const keys = Array.from({ length: calls }, peerId)
      for (const [name, impl] of Object.entries(IMPLS)) {
        const t0 = process.hrtime.bigint()
        for (const key of keys) impl(relays, key)
        ns[name]!.push(Number(process.hrtime.bigint() - t0) / calls / size)
      }
    }
    for (const [impl, xs] of Object.entries(ns)) {
      rows.push({ relays: size, impl, median: median(xs), min: Math.min(...xs) })
      log(`${size} relays, ${impl}: median ${f(median(xs), 0)} ns per relay, min ${f(Math.min(...xs), 0)}`)
    }
  }
  load.end = loadavg()
  const at = (relays: number, impl: string) => rows.find((r) => r.relays === relays && r.impl === impl)!
  const parts = SIZES.map((s) => `${s} relays: ${f(at(s, 'before').median, 0)} -> ${f(at(s, 'now').median, 0)} ns per relay (plain ${f(at(s, 'plain').median, 0)})`)
  const body = [
    `Top ${COUNT} of N relays for a key, as discovery's \`?for=\` computes it without its answer cache; three implementations in one process, ${ROUNDS} interleaved rounds, a fresh key per call. "plain" is the reference ranking (rankRelays: a Hash object per relay, BigInt scores, a full sort) cut to ${COUNT}; "before" is topRelays at 299081a; "now" is topRelays after this change. The three answers are checked equal. ns per relay = time per call / N; median and fastest round.`,
    '',
    ...mdTable(['Relays', 'Implementation', 'ns per relay (median)', 'ns per relay (min)', 'µs per answer (median)'],
      rows.map((r) => [r.relays, r.impl, f(r.median, 0), f(r.min, 0), f(r.median * r.relays / 1000, 0)])),
    '',
    '### Machine',
    '',
    ...machineTable(machine, { coresNote: 'one process; other jobs may share the machine', loadavg: load, noRedis: true }),
    ''
  ].join('\n')
  log(writeSection(values.out!, benchSection({ id: 'rendezvous-micro', title: 'Rendezvous ranking for ?for=: ns per relay', command: 'npm run bench:rendezvous-micro', machine, parts, body })))
}

main()
