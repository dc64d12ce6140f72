/**
 * Markdown shared by the bench reports: number formatting, tables, the
 * machine description, the errors list, and writing a script's own section
 * of docs/benchmarks.md (between its markers, see @pos-relay/testing's
 * writeDocSection).
 */
import { fileURLToPath } from 'node:url'
import { writeDocSection, type DocSection } from '@pos-relay/testing'
import type { LoadAvg, MachineInfo } from './machine.ts'

/** docs/benchmarks.md: every bench script writes its own section there */
export const BENCH_DOC = fileURLToPath(new URL('../../../docs/benchmarks.md', import.meta.url))

/** `n` with `digits` decimals, or n/a */
export const f = (n: number | undefined | null, digits = 1): string => n == null || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits)
/** a ratio as a whole percentage */
export const pct = (n: number): string => Number.isFinite(n) ? `${Math.round(n * 100)} %` : 'n/a'
/** with an explicit + for positive numbers */
export const signed = (n: number, digits: number): string => `${n >= 0 ? '+' : ''}${f(n, digits)}`

/** A markdown table: header row, separator, one row per entry. */
export function mdTable (header: string[], rows: Array<Array<string | number>>): string[] {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)]
}

export interface MachineTableOptions {
  /** what shares the cores, e.g. "relay, peers and bench driver share them" */
  coresNote: string
  /** packages beyond machine.packages, e.g. "rate-limiter-flexible 11.4.0" */
  extraPackages?: string[]
  /** load average readings by moment */
  loadavg?: Record<string, LoadAvg>
  /** rows after the standard ones */
  extraRows?: Array<[string, string]>
  /** leave out the Redis row (a run without Redis) */
  noRedis?: boolean
}

/** The machine the numbers were measured on, as a two-column table. */
export function machineTable (m: MachineInfo, o: MachineTableOptions): string[] {
  const packages = [...Object.entries(m.packages).map(([k, v]) => `${k} ${v}`), ...(o.extraPackages ?? [])].join(', ')
  const rows: Array<[string, string]> = [
    ['CPU', m.cpu],
    ['Cores', `${m.cores} (${o.coresNote})`],
    ['Memory', `${f(m.memGiB)} GiB`],
    ['OS / kernel', `${m.os} / ${m.kernel}`],
    ['Node', m.node],
    ...(o.noRedis === true ? [] : [['Redis', m.redis] as [string, string]]),
    ['Packages', packages],
    ...(o.loadavg != null ? [['Load average (1 / 5 / 15 min)', Object.entries(o.loadavg).map(([k, v]) => `${k}: ${v.join(' / ')}`).join('; ')] as [string, string]] : []),
    ...(o.extraRows ?? [])
  ]
  return ['| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)]
}

/** `### Errors` and one bullet per error; nothing when there were none. */
export function errorsSection (errors: string[], heading = '### Errors'): string[] {
  return errors.length === 0 ? [] : [heading, '', ...errors.map((e) => `- ${e}`), '']
}

/**
 * Writes `section` into `out` (normally BENCH_DOC) unless `out` is '-'.
 * Returns what it did, for the log.
 */
export function writeSection (out: string, section: DocSection): string {
  if (out === '-') return 'not written (output "-")'
  writeDocSection(out, section)
  return `wrote section "${section.id}" of ${out}`
}

/** A section of docs/benchmarks.md whose headline joins `parts` (or says there was no result). */
export function benchSection (s: { id: string, title: string, command: string, machine: MachineInfo, parts: string[], body: string }): DocSection {
  return {
    id: s.id,
    title: s.title,
    date: s.machine.date.slice(0, 10),
    headline: s.parts.length > 0 ? s.parts.join('; ') : 'no result (see Errors)',
    command: s.command,
    body: s.body,
    commit: s.machine.commit
  }
}
