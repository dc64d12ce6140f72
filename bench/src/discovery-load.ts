/**
 * GET /api/p2p/relays under fixed offered rates (issue 17's benchmark):
 * discovery (Redis store, N relays each with a TCP and a QUIC address) in its
 * own process pinned to core 0 with taskset, autocannon in a separate process
 * pinned to core 1, 50 connections, a fixed overall rate per run.
 *
 * Variants, for 1,000 and 10,000 relays: the full list uncompressed, the full
 * list with Accept-Encoding br/gzip (br is chosen), the 304 path
 * (If-None-Match with the current ETag), ?for=<peer id>&count=3 with one peer id
 * (answered from the ?for= cache) and with a new peer id per request
 * (autocannon-keys.ts: every answer ranks).
 * Rates: 1,000 / 2,000 / 5,000 requests/s, 6 s each (bounded: the whole run
 * is about 5 min). Per run: achieved rate of the expected status, p50/p99,
 * discovery CPU seconds per 1,000 answers and Redis commands per second.
 *
 *   npm run bench:discovery [-- --seconds 6] [-- --out docs/benchmarks.md | -]
 */
import { execFileSync, spawn } from 'node:child_process'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { startRedis } from '@pos-relay/testing'
import { benchScript, spawnChild } from './lib/children.ts'
import { loadavg, machineInfo, packageVersion, type LoadAvg } from './lib/machine.ts'
import { readCpuSeconds } from './lib/proc.ts'
import { callsDelta, commandCalls, redisCommand } from './lib/redis-admin.ts'
import { BENCH_DOC, benchSection, f, machineTable, mdTable, writeSection } from './lib/report.ts'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '6' }, out: { type: 'string', default: BENCH_DOC } } })
const SECONDS = Number(values.seconds)
const RATES = [1000, 2000, 5000]
const SIZES = [1000, 10_000]
const CONNECTIONS = 50
const AUTOCANNON = fileURLToPath(new URL('../../node_modules/autocannon/autocannon.js', import.meta.url))
const AUTOCANNON_KEYS = fileURLToPath(new URL('./autocannon-keys.ts', import.meta.url))
const log = (s: string): void => { process.stderr.write(`${s}\n`) }

interface Variant { name: string, path: (base: string) => string, headers: (etag: string) => Record<string, string>, status: number, distinctKeys?: boolean }
// a peer id that is not a relay, as a client's own
const CLIENT = '12D3KooWGTT9QsbssEwn88dneQpv7Agw8MfFvS9jvdZ3V9GrqHNh'
const VARIANTS: Variant[] = [
  { name: 'full list, uncompressed', path: (b) => `${b}/api/p2p/relays`, headers: () => ({}), status: 200 },
  { name: 'full list, br', path: (b) => `${b}/api/p2p/relays`, headers: () => ({ 'accept-encoding': 'br, gzip' }), status: 200 },
  { name: 'full list, 304', path: (b) => `${b}/api/p2p/relays`, headers: (etag) => ({ 'if-none-match': etag, 'accept-encoding': 'br, gzip' }), status: 304 },
  // one key: after the first answer every one comes from the ?for= answer cache (a listener polling with its id)
  { name: '?for= count=3', path: (b) => `${b}/api/p2p/relays?for=${CLIENT}&count=3`, headers: () => ({}), status: 200 },
  // a new key per request: no cache hit, every answer ranks all relays
  { name: '?for= count=3, a new key per request', path: (b) => b, headers: () => ({}), status: 200, distinctKeys: true }
]

interface Run { relays: number, variant: string, rate: number, achieved: number, p50: number, p99: number, errors: number, other: number, cpuMsPer1k: number, redisPerS: number }

function autocannon (url: string, headers: Record<string, string>, rate: number, distinctKeys = false): Promise<any> {
  const args = distinctKeys
    ? [AUTOCANNON_KEYS, url, String(rate), String(SECONDS), String(CONNECTIONS)]
    : [AUTOCANNON, '-c', String(CONNECTIONS), '-R', String(rate), '-d', String(SECONDS), '-j', '-t', '10', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}=${v}`]), url]
  return new Promise((resolve, reject) => {
    // the load on core 1, discovery alone on core 0
    const child = spawn('taskset', ['-c', '1', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), (SECONDS + 30) * 1000)
    child.on('exit', (code) => {
      clearTimeout(timer)
      try { resolve(JSON.parse(out)) } catch { reject(new Error(`autocannon exited ${code} without JSON`)) }
    })
  })
}

async function main (): Promise<void> {
  const began = Date.now()
  const machine = machineInfo()
  const load: Record<string, LoadAvg> = { start: loadavg() }
  if (availableParallelism() < 2) throw new Error('needs 2 cores (discovery on one, load on the other)')
  const redis = await startRedis()
  const runs: Run[] = []
  const sizes: Array<{ relays: number, identity: number, br: number, gzip: number, for3: number, etagHeader: number }> = []
  const errors: string[] = []
  try {
    for (const relays of SIZES) {
      await redisCommand(redis.port, ['FLUSHALL'])
      const child = await spawnChild(benchScript('discovery-process.ts'), { name: `discovery-${relays}`, args: ['redis', String(relays), redis.url, '2'], readyTimeoutMs: 300_000 })
      try {
        execFileSync('taskset', ['-a', '-cp', '0', String(child.pid)], { stdio: 'ignore' })
        const base = child.info.url as string
        // node's fetch decodes bodies; ask with raw HTTP for the wire sizes
        const wire = async (headers: Record<string, string>, path = '/api/p2p/relays'): Promise<number> => {
          const { request } = await import('node:http')
          return await new Promise((resolve, reject) => {
            request(`${base}${path}`, { headers }, (res) => { let n = 0; res.on('data', (d: Buffer) => { n += d.length }); res.on('end', () => { resolve(n) }) }).on('error', reject).end()
          })
        }
        const etag = (await fetch(`${base}/api/p2p/relays`)).headers.get('etag') ?? ''
        sizes.push({ relays, identity: await wire({}), br: await wire({ 'accept-encoding': 'br' }), gzip: await wire({ 'accept-encoding': 'gzip' }), for3: await wire({}, `/api/p2p/relays?for=${CLIENT}&count=3`), etagHeader: etag.length })
        for (const v of VARIANTS) {
          for (const rate of RATES) {
            const cpu0 = readCpuSeconds(child.pid)
            const calls0 = await commandCalls(redis.port)
            const r = await autocannon(v.path(base), v.headers(etag), rate, v.distinctKeys)
            const cpu = readCpuSeconds(child.pid) - cpu0
            const calls = Object.values(callsDelta(calls0, await commandCalls(redis.port))).reduce((a, b) => a + b, 0)
            const expected = Number(r.statusCodeStats?.[String(v.status)]?.count ?? 0)
            const total = Object.values(r.statusCodeStats ?? {}).reduce((a: number, s: any) => a + Number(s.count), 0)
            const run: Run = { relays, variant: v.name, rate, achieved: expected / SECONDS, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, other: total - expected, cpuMsPer1k: expected > 0 ? cpu / expected * 1e6 : NaN, redisPerS: calls / SECONDS }
            runs.push(run)
            log(`${relays} relays, ${v.name}, ${rate}/s offered: ${f(run.achieved, 0)}/s, p50 ${run.p50} ms, p99 ${run.p99} ms, ${f(run.cpuMsPer1k, 0)} CPU ms per 1000, redis ${f(run.redisPerS)}/s, errors ${run.errors}, other statuses ${run.other}`)
          }
        }
        load[`after ${relays} relays`] = loadavg()
      } finally {
        await child.stop()
      }
    }
  } catch (err) {
    errors.push(String((err as Error).stack ?? err))
  } finally {
    await redis.stop()
  }
  const durationS = (Date.now() - began) / 1000
  const byGoal = (relays: number, variant: string, rate: number) => runs.find((r) => r.relays === relays && r.variant === variant && r.rate === rate)
  const full2k = byGoal(1000, 'full list, br', 2000)
  const for5k = byGoal(1000, '?for= count=3', 5000)
  const forNew5k = byGoal(1000, '?for= count=3, a new key per request', 5000)
  const parts = [
    full2k ? `full list (1,000 relays, br) at 2,000/s offered: ${f(full2k.achieved, 0)}/s, p99 ${full2k.p99} ms` : '',
    for5k ? `?for= (one key, cached) at 5,000/s offered: ${f(for5k.achieved, 0)}/s, p99 ${for5k.p99} ms` : '',
    forNew5k ? `?for= (a new key per request) at 5,000/s offered: ${f(forNew5k.achieved, 0)}/s, ${f(forNew5k.cpuMsPer1k, 0)} CPU ms per 1,000` : ''
  ].filter(Boolean)
  const body = [
    `Discovery on one core (taskset -c 0; Redis store; relays with a TCP and a QUIC address), autocannon ${packageVersion('autocannon')} in a separate process on the other core, ${CONNECTIONS} connections, fixed overall rate, ${SECONDS} s per run; whole run ${f(durationS, 0)} s. "Achieved" counts only answers with the expected status (200, or 304 for the 304 path). Goals (issue 17): full list ≥ 2,000/s with p99 ≤ 5 ms, ?for= ≥ 5,000/s. \`?for= count=3\` asks for one peer id every time, so after the first answer each comes from discovery's ?for= answer cache (per list version; a listener polling with its own id); \`a new key per request\` (autocannon's API, a fresh valid peer id per request, never repeated) misses the cache every time: each answer ranks all relays.`,
    '',
    '### Bytes per client per poll (body on the wire)',
    '',
    ...mdTable(['Relays', 'Full list', 'br', 'gzip', '304', '?for= count=3'], sizes.map((s) => [s.relays, `${f(s.identity / 1024)} KiB`, `${f(s.br / 1024)} KiB`, `${f(s.gzip / 1024)} KiB`, '0 (headers only)', `${f(s.for3 / 1024, 2)} KiB`])),
    '',
    '### Rates',
    '',
    ...mdTable(['Relays', 'Request', 'Offered /s', 'Achieved /s', 'p50 ms', 'p99 ms', 'CPU ms per 1,000 answers', 'Redis commands /s', 'Errors / other statuses'],
      runs.map((r) => [r.relays, r.variant, r.rate, f(r.achieved, 0), r.p50, r.p99, f(r.cpuMsPer1k, 0), f(r.redisPerS, 1), `${r.errors} / ${r.other}`])),
    '',
    '### Machine',
    '',
    ...machineTable(machine, { coresNote: 'discovery pinned to core 0, autocannon to core 1; Redis unpinned; other jobs may share the machine', loadavg: load, extraPackages: [`autocannon ${packageVersion('autocannon')}`] }),
    '',
    ...(errors.length > 0 ? ['### Errors', '', ...errors.map((e) => `- ${e.split('\n')[0]}`), ''] : [])
  ].join('\n')
  log(writeSection(values.out!, benchSection({ id: 'discovery-load', title: 'Discovery under load: full list, 304, compression, ?for=', command: 'npm run bench:discovery', machine, parts, body })))
  if (errors.length > 0) process.exitCode = 1
}

await main()
