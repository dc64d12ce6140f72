/**
 * The fixture the benches with parts and a real Redis share (limits, auth):
 * parts and output chosen from `<PREFIX>_*` environment variables, the
 * results' common fields, a scratch folder and a Redis for the run, and
 * publishing the results (report to stdout, the section of
 * docs/benchmarks.md, optional JSON).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { startRedis, type DocSection, type RedisServer } from '@pos-relay/testing'
import { loadavg, machineInfo, type LoadAvg, type MachineInfo } from './machine.ts'
import { BENCH_DOC, writeSection } from './report.ts'
import { attempter, type Log } from './script.ts'

/** The parts named in `<prefix>_ONLY` (comma list), or all of them. */
export function partsFromEnv<P extends string> (prefix: string, all: readonly P[]): Set<P> {
  const name = `${prefix}_ONLY`
  return new Set((process.env[name] ?? all.join(',')).split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    if (!(all as readonly string[]).includes(x)) throw new Error(`${name}: unknown part ${x} (parts: ${all.join(', ')})`)
    return x as P
  }))
}

/** Where the section goes: `<prefix>_OUT`, else docs/benchmarks.md for a full run and nowhere ('-') for a partial one (`<prefix>_ONLY`). */
export function sectionOutFromEnv (prefix: string): string {
  return process.env[`${prefix}_OUT`] ?? (process.env[`${prefix}_ONLY`] != null ? '-' : BENCH_DOC)
}

/** What every bench's results carry. */
export interface BenchResultsBase {
  machine: MachineInfo
  /** load average readings by moment */
  loadavg: Record<string, LoadAvg>
  errors: string[]
  durationS: number
}

export interface BenchRun {
  /** a scratch folder, removed at the end */
  dir: string
  redis: RedisServer
  /** runs a part; a failed part is logged and recorded in results.errors, and the run goes on */
  attempt: (name: string, fn: () => Promise<void>) => Promise<void>
}

export interface RunWithRedisOptions<R extends BenchResultsBase> {
  /** names the scratch folder */
  name: string
  log: Log
  /** the bench's results from the common fields */
  results: (base: BenchResultsBase) => R
  /** the parts */
  body: (run: BenchRun, results: R) => Promise<void>
  render: (results: R) => string
  section: (results: R, report: string) => DocSection
  /** see sectionOutFromEnv */
  out: string
  /** a file for the results as JSON; '' = none */
  json: string
}

/**
 * Runs `body` with a scratch folder and a real Redis (both gone afterwards,
 * whatever happens), then prints the report, writes the section and the JSON;
 * exit code 1 when a part failed.
 */
export async function runWithRedis<R extends BenchResultsBase> (o: RunWithRedisOptions<R>): Promise<void> {
  const started = performance.now()
  const results = o.results({ machine: machineInfo(), loadavg: { start: loadavg() }, errors: [], durationS: 0 })
  o.log(`load average at start: ${results.loadavg.start!.join(' ')} (${results.machine.cores} cores)`)
  const dir = mkdtempSync(join(os.tmpdir(), `pos-relay-bench-${o.name}-`))
  let redis: RedisServer | undefined
  try {
    redis = await startRedis()
    await o.body({ dir, redis, attempt: attempter(results.errors, o.log) }, results)
  } finally {
    await redis?.stop().catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  }
  results.loadavg.end = loadavg()
  results.durationS = (performance.now() - started) / 1000
  const report = o.render(results)
  process.stdout.write(report)
  o.log(writeSection(o.out, o.section(results, report)))
  if (o.json !== '') writeFileSync(o.json, JSON.stringify(results, (_k, v) => v instanceof Set ? [...v] : v, 2) + '\n')
  if (results.errors.length > 0) process.exitCode = 1
}
