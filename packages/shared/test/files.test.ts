import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readJsonFile, readSecretFile } from '@pos-relay/shared'

describe('readSecretFile and readJsonFile', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'pos-relay-files-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('trims a secret and refuses a missing, empty or directory file naming the flag, as a ConfigError', async () => {
    await writeFile(join(dir, 's'), '  hunter2\n')
    assert.equal(await readSecretFile('--p2p-secret-file', join(dir, 's')), 'hunter2')
    await writeFile(join(dir, 'empty'), '\n\n')
    for (const [file, message] of [['missing', /^--p2p-secret-file .*missing does not exist$/], ['empty', /empty is empty$/], ['.', /is a directory$/]] as const) {
      await assert.rejects(readSecretFile('--p2p-secret-file', join(dir, file)), (err: Error) => err.name === 'ConfigError' && message.test(err.message))
    }
  })

  it('parses JSON, and says which file is not JSON without printing its content', async () => {
    await writeFile(join(dir, 'tiers.json'), '{"free":{}}')
    assert.deepEqual(await readJsonFile('tiers file', join(dir, 'tiers.json')), { free: {} })
    await writeFile(join(dir, 'keys.json'), '{"d":"secret-material"')
    await assert.rejects(readJsonFile('ticket keys file', join(dir, 'keys.json')), (err: Error) => /^ticket keys file .*keys\.json is not valid JSON/.test(err.message) && !err.message.includes('secret-material'))
    // V8 quotes short invalid texts in its own message ("hunter2" is not valid JSON)
    await writeFile(join(dir, 'bare.json'), 'hunter2')
    await assert.rejects(readJsonFile('ticket keys file', join(dir, 'bare.json')), (err: Error) => /is not valid JSON/.test(err.message) && !err.message.includes('hunter2'))
    await assert.rejects(readJsonFile('ticket keys file', join(dir, 'nope.json'), ' (create it with `pos-relay keys generate`)'), /nope\.json does not exist \(create it with/)
  })
})
