import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { headingAnchor, headlines, upsertSection, writeDocSection, type DocSection } from '@pos-relay/testing'

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
      assert.match(doc, /<!-- bench:summary:begin -->\n## Summary[\s\S]*\| \[The limits bench\]\(#the-limits-bench\) \| limits headline \| 2030-01-02 \| `npx node bench\/src\/limits.ts` \|[\s\S]*<!-- bench:summary:end -->/)
      assert.match(doc, /<!-- bench:limits:begin -->\n<!-- bench:headline \{.*\} -->\n## The limits bench\n\n### Machine\n\nx\n\n<!-- bench:limits:end -->/)
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
})
