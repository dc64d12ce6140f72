/**
 * Generated sections of one markdown document (docs/benchmarks.md): each
 * benchmark script owns the text between
 *
 *   <!-- bench:<id>:begin -->
 *   <!-- bench:<id>:end -->
 *
 * and replaces only that when it reruns; everything outside the markers is
 * left as it is. The first line inside a section is a hidden headline
 * comment (title, date, one-line result, command) from which the
 * "Summary" block (between `<!-- bench:summary:begin/end -->`) is rebuilt
 * every time any section is written, so the summary never disagrees with
 * the sections below it.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { basename, dirname } from 'node:path'

export interface DocSection {
  /** marker id: letters, digits and dashes (`limits`, `auth`, ...) */
  id: string
  /** the section's heading (rendered as `## title`) */
  title: string
  /** when it was measured, YYYY-MM-DD */
  date: string
  /** the headline figure(s), one line of markdown, for the summary */
  headline: string
  /** how to regenerate it, e.g. `npm run bench:auth` */
  command: string
  /** the section's markdown below its heading (use ### and deeper) */
  body: string
  /**
   * the commit measured (`git describe --always --dirty`); writeDocSection
   * fills it in from the document's repository when it is left out
   */
  commit?: string
}

export interface Headline { id: string, title: string, date: string, headline: string, command: string, commit?: string }

const ID = /^[a-z0-9][a-z0-9-]*$/
const SUMMARY = 'summary'
const begin = (id: string): string => `<!-- bench:${id}:begin -->`
const end = (id: string): string => `<!-- bench:${id}:end -->`
const HEADLINE = /^<!-- bench:headline (\{.*\}) -->$/m
const SECTION = /<!-- bench:([a-z0-9][a-z0-9-]*):begin -->\n([\s\S]*?)<!-- bench:\1:end -->/g

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
export function headingAnchor (title: string): string {
  return title.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')
}

/** The markdown of one section, markers included. */
export function renderSection (s: DocSection): string {
  if (!ID.test(s.id) || s.id === SUMMARY) throw new Error(`bad section id ${JSON.stringify(s.id)}`)
  const meta: Headline = { id: s.id, title: s.title, date: s.date, headline: s.headline.replace(/\s*\n\s*/g, ' '), command: s.command, ...(s.commit != null ? { commit: s.commit } : {}) }
  // `-->` inside the comment would end it early
  const json = JSON.stringify(meta).replace(/--/g, '-\\u002d')
  const stamp = s.commit != null ? `Measured at commit \`${s.commit}\` on ${s.date} by \`${s.command}\`. Generated: do not edit by hand.\n\n` : ''
  return `${begin(s.id)}\n<!-- bench:headline ${json} -->\n## ${s.title}\n\n${stamp}${s.body.trim()}\n\n${end(s.id)}`
}

/** Headlines of every section of `doc`, in document order. */
export function headlines (doc: string): Headline[] {
  const out: Headline[] = []
  for (const m of doc.matchAll(SECTION)) {
    if (m[1] === SUMMARY) continue
    const h = HEADLINE.exec(m[2]!)
    if (h == null) continue
    try { out.push(JSON.parse(h[1]!) as Headline) } catch {}
  }
  return out
}

function renderSummary (list: Headline[]): string {
  const rows = list.map((h) => `| [${h.title}](#${headingAnchor(h.title)}) | ${h.headline.replace(/\|/g, '\\|')} | ${h.date} | ${h.commit != null ? `\`${h.commit}\`` : 'not recorded'} | \`${h.command}\` |`)
  return [
    begin(SUMMARY),
    '## Summary',
    '',
    'Generated from the sections below (each section\'s headline) whenever a benchmark script rewrites its section. The dates differ: each section is from its own run, on the machine it describes, at the commit it names (`-dirty`: with uncommitted changes). `npm run bench:all` reruns every one.',
    '',
    '| Benchmark | Headline | Measured | Commit | Regenerate |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    end(SUMMARY)
  ].join('\n')
}

function replaceBlock (doc: string, id: string, block: string): string | undefined {
  const b = doc.indexOf(begin(id))
  if (b < 0) return undefined
  const e = doc.indexOf(end(id), b)
  if (e < 0) throw new Error(`${begin(id)} has no ${end(id)}`)
  return doc.slice(0, b) + block + doc.slice(e + end(id).length)
}

/**
 * Throws unless every begin marker of `doc` is followed by its own end marker
 * before any other marker, and no id appears twice. A git merge of two
 * branches that each appended a section after the same last one can
 * interleave their markers; replacing one section of such a document would
 * silently delete parts of the others.
 */
export function checkMarkers (doc: string): void {
  const seen = new Set<string>()
  let open: string | undefined
  for (const m of doc.matchAll(/<!-- bench:([a-z0-9][a-z0-9-]*):(begin|end) -->/g)) {
    const [, id, kind] = m
    if (kind === 'begin') {
      if (open != null) throw new Error(`${begin(id!)} inside section ${open}: the markers are interleaved (a bad merge?); fix the document by hand`)
      if (seen.has(id!)) throw new Error(`section ${id} appears twice`)
      seen.add(id!)
      open = id
    } else {
      if (open !== id) throw new Error(`${end(id!)} ${open != null ? `inside section ${open}` : 'without its begin'}: the markers are interleaved (a bad merge?); fix the document by hand`)
      open = undefined
    }
  }
  if (open != null) throw new Error(`${begin(open)} has no ${end(open)}`)
}

/**
 * `doc` with section `s` replaced (or appended when absent) and the summary
 * rebuilt (inserted before the first section when absent). Refuses a
 * document whose markers do not pair up (checkMarkers).
 */
export function upsertSection (doc: string, s: DocSection): string {
  checkMarkers(doc)
  const block = renderSection(s)
  let next = replaceBlock(doc, s.id, block) ?? `${doc.replace(/\s*$/, '')}\n\n${block}\n`
  const summary = renderSummary(headlines(next))
  const replaced = replaceBlock(next, SUMMARY, summary)
  if (replaced != null) return replaced
  const first = next.search(/<!-- bench:[a-z0-9-]+:begin -->/)
  next = `${next.slice(0, first).replace(/\s*$/, '')}\n\n${summary}\n\n${next.slice(first)}`
  return next
}

const NEW_DOC = '# Benchmarks\n\nEach section below is generated by its own script, between `<!-- bench:<id>:begin -->` and `<!-- bench:<id>:end -->`; a script rewrites only its own section (and the summary). Do not edit inside the markers by hand: rerun the script.\n'

/** `git describe --always --dirty` of the repository holding `file`; 'unknown' outside one. */
export function commitOf (file: string): string {
  const git = (args: string[]): string => execFileSync('git', args, { cwd: dirname(file), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  try {
    const commit = git(['describe', '--always', '--abbrev=10'])
    // the document the sections go into is not the code measured: bench:all
    // rewrites it section by section, which must not stamp the later ones dirty
    const doc = git(['rev-parse', '--show-prefix']) + basename(file)
    const changed = git(['status', '--porcelain', '--untracked-files=no', '--', ':(top)', `:(top,exclude)${doc}`])
    return changed === '' ? commit : `${commit}-dirty`
  } catch {
    return 'unknown'
  }
}

/** Reads `file` (or starts a new document), replaces section `s` (stamped with its commit) and writes it back. */
export function writeDocSection (file: string, s: DocSection): void {
  s = { ...s, commit: s.commit ?? commitOf(file) }
  let doc: string
  try { doc = readFileSync(file, 'utf8') } catch (err: any) {
    if (err?.code !== 'ENOENT') throw err
    doc = NEW_DOC
  }
  writeFileSync(file, upsertSection(doc, s))
}
