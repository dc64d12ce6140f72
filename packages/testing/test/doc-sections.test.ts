import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { checkMarkers, headingAnchor, headlines, upsertSection, writeDocSection, type DocSection } from '@pos-relay/testing'

const section = (id: string, body: string, headline = `${id} headline`): DocSection =>
  ({ id, title: `The ${id} bench`, date: '2030-01-02', headline, command: `npx node bench/src/${id}.ts`, body })

describe('doc sections', () => {
  it('creates the document, the section and the summary when absent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'doc-sections-'))
    try {
      const file = join(dir, 'benchmarks.md')
      writeDocSection(file, section('limits', '### Machine\n\nx'))
      const doc = await readFile(file, 'utf8')
      assert.match(doc, /^# Benchmarks\n/)
      // outside a git repository the commit is 'unknown', and says so
      assert.match(doc, /<!-- bench:summary:begin -->\n## Summary[\s\S]*\| \[The limits bench\]\(#the-limits-bench\) \| limits headline \| 2030-01-02 \| `unknown` \| `npx node bench\/src\/limits.ts` \|[\s\S]*<!-- bench:summary:end -->/)
      assert.match(doc, /<!-- bench:limits:begin -->\n<!-- bench:headline \{.*\} -->\n## The limits bench\n\nMeasured at commit `unknown` on 2030-01-02 by `npx node bench\/src\/limits.ts`\. Generated: do not edit by hand\.\n\n### Machine\n\nx\n\n<!-- bench:limits:end -->/)
      assert.ok(doc.indexOf('bench:summary:begin') < doc.indexOf('bench:limits:begin'))
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('replaces only its own section, keeps everything else byte for byte, and rebuilds the summary in document order', () => {
    let doc = '# Benchmarks\n\nHand-written intro.\n'
    doc = upsertSection(doc, section('run', 'run v1'))
    doc = upsertSection(doc, section('limits', 'limits v1\n\n| a | b |\n|---|---|\n| 1 | 2 |'))
    doc = doc.replace('<!-- bench:limits:begin -->', 'Text between sections.\n\n<!-- bench:limits:begin -->')
    const before = doc
    doc = upsertSection(doc, section('run', 'run v2', 'faster | now'))
    assert.ok(doc.includes('run v2') && !doc.includes('run v1'))
    assert.ok(doc.includes('Hand-written intro.') && doc.includes('Text between sections.'))
    const limits = (d: string): string => d.slice(d.indexOf('Text between sections.'))
    assert.equal(limits(doc), limits(before))
    assert.deepEqual(headlines(doc).map((h) => [h.id, h.headline]), [['run', 'faster | now'], ['limits', 'limits headline']])
    // a pipe in a headline is escaped in the summary table
    assert.match(doc, /\| faster \\\| now \|/)
    // rerunning with the same content is a fixed point
    assert.equal(upsertSection(doc, section('run', 'run v2', 'faster | now')), doc)
  })

  it('stamps each section with the commit of the repository it is written in (-dirty with uncommitted changes)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'doc-sections-git-'))
    try {
      const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: dir, encoding: 'utf8' }).trim()
      git('init', '-q')
      await writeFile(join(dir, 'code.ts'), 'v1\n')
      git('add', 'code.ts')
      git('commit', '-qm', 'one')
      const head = git('rev-parse', '--short=10', 'HEAD')
      const file = join(dir, 'benchmarks.md')
      writeDocSection(file, section('run', 'body'))
      assert.equal(headlines(await readFile(file, 'utf8'))[0]!.commit, head)
      assert.match(await readFile(file, 'utf8'), new RegExp(`Measured at commit \`${head}\``))
      await writeFile(join(dir, 'code.ts'), 'v2\n')
      writeDocSection(file, section('run', 'body'))
      assert.equal(headlines(await readFile(file, 'utf8'))[0]!.commit, `${head}-dirty`)
      // a section without a recorded commit (written by hand) says so in the summary
      const handWritten = upsertSection('# B\n', section('old', 'x'))
      assert.match(handWritten, /\| 2030-01-02 \| not recorded \|/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('keeps a headline that contains "-->" inside its comment', () => {
    const doc = upsertSection('# B\n', section('auth', 'body', 'a --> b -- c'))
    assert.equal(headlines(doc)[0]!.headline, 'a --> b -- c')
    assert.equal(doc.match(/-->/g)!.length, doc.match(/<!--/g)!.length + 1) // the one in the summary table only
  })

  it('refuses a bad id and an unterminated section', () => {
    assert.throws(() => upsertSection('', section('Bad Id', 'x')), /bad section id/)
    assert.throws(() => upsertSection('<!-- bench:run:begin -->\nno end\n', section('run', 'x')), /has no/)
  })

  it('anchors like GitHub', () => {
    assert.equal(headingAnchor('Auth & metering: on vs off (goal ≤ 5 %)'), 'auth--metering-on-vs-off-goal--5-')
    assert.equal(headingAnchor("Our relay next to rust-libp2p's"), 'our-relay-next-to-rust-libp2ps')
  })

  it('refuses a document whose sections are interleaved (as a bad merge left docs/benchmarks.md), changing nothing', () => {
    const a = '<!-- bench:a:begin -->\nA\n<!-- bench:a:end -->'
    const good = `# B\n\n${a}\n`
    assert.doesNotThrow(() => { checkMarkers(good) })
    // b's begin inside c's section, as two branches that appended after a: replacing c would eat b's text
    const interleaved = `# B\n\n${a}\n<!-- bench:b:begin -->\nB1\n<!-- bench:c:begin -->\nC\n<!-- bench:b:end -->\nB2\n<!-- bench:c:end -->\n`
    assert.throws(() => upsertSection(interleaved, section('c', 'new')), /interleaved/)
    assert.throws(() => { checkMarkers(`${good}${a}\n`) }, /appears twice/)
    assert.throws(() => { checkMarkers('<!-- bench:a:begin -->\n') }, /has no/)
    assert.throws(() => { checkMarkers('<!-- bench:a:end -->\n') }, /without its begin/)
  })

  it('docs/benchmarks.md itself has well-paired markers, and `npm run bench:all` reruns every section of it', async () => {
    const doc = await readFile(new URL('../../../docs/benchmarks.md', import.meta.url), 'utf8')
    checkMarkers(doc)
    const all = await readFile(new URL('../../../scripts/bench-all.sh', import.meta.url), 'utf8')
    const scripts = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')).scripts as Record<string, string>
    for (const h of headlines(doc)) {
      // `npm run bench:x` -> the script file it runs; `npx node <file>` -> that file
      const npm = /^npm run (\S+)/.exec(h.command)
      const command = npm != null ? scripts[npm[1]!] ?? '' : h.command
      const file = /node (\S+\.ts)/.exec(command)?.[1]
      assert.ok(file != null, `section ${h.id}: no script file in ${JSON.stringify(h.command)}`)
      const env = /AUTH_RELAYS=pool/.test(command) ? 'AUTH_RELAYS=pool ' : ''
      assert.ok(all.split('\n').some((l) => /(^|; then )step /.test(l) && l.includes(file) && l.includes(env)), `section ${h.id} (${h.command}) has no step in scripts/bench-all.sh`)
    }
  })
})
