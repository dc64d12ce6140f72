import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { freePort, waitFor } from '@pos-relay/testing'
import { spawnCli, type CliProcess } from './helpers/cli.ts'
import { exampleFailureCases, runExample, type Example } from './helpers/examples.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

describe('examples/file-transfer (the README walk-through)', { timeout: 240_000 }, () => {
  let dir: string
  let dev: CliProcess
  let url: string
  let apiKey: string
  const started: Example[] = []
  const example = (args: string[], opts: { cwd?: string } = {}): Example => {
    const e = runExample('', args, { js: true, ...opts })
    started.push(e)
    return e
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pos-relay-example-'))
    const [port, relayPort, metricsPort] = [await freePort(), await freePort(), await freePort()]
    // the dev account's tier, with room for the listeners and hand-made senders of every case (the default free tier holds 2)
    const tiers = join(dir, 'tiers.json')
    await writeFile(tiers, JSON.stringify({ free: { name: 'free', max_reservations: 32, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 } }))
    dev = spawnCli(['dev', '--port', String(port), '--relay-port', String(relayPort), '--metrics-port', String(metricsPort), '--tiers-file', tiers])
    url = `http://127.0.0.1:${port}`
    await waitFor(() => dev.stdout.some((l) => l.includes('relay address:')), { timeoutMs: 20_000, message: 'dev not up' })
    // dev runs with accounts on: the relay wants tickets, which the app gets with the dev API key
    const key = /dev API key:\s+(\S+)/.exec(dev.stdout.join('\n'))?.[1]
    assert.ok(key != null, 'dev printed no API key')
    apiKey = key
  })

  after(async () => {
    for (const e of started) e.kill()
    await dev?.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('sends a 3 MiB file through the dev relay and the receiver gets it intact', async () => {
    const out = join(dir, 'walkthrough')
    const listener = example(['listen', '--discovery', url, '--out', out, '--api-key', apiKey])
    await waitFor(() => listener.lines.some((l) => l.event === 'listening'), { timeoutMs: 20_000, message: 'listener not up' })
    const peerId = listener.lines.find((l) => l.event === 'listening').peer_id
    const file = join(dir, 'photo.bin')
    const content = randomBytes(3 * 1024 * 1024)
    await writeFile(file, content)
    const sender = example(['send', '--discovery', url, '--api-key', apiKey, '--peer', peerId, '--file', file])
    assert.equal(await sender.exited, 0)
    const sent = sender.lines.find((l) => l.event === 'sent')
    assert.equal(sent.intact, true)
    assert.equal(sent.bytes, content.length)
    await waitFor(() => listener.lines.some((l) => l.event === 'received'), { timeoutMs: 5000 })
    assert.equal(sha256(await readFile(join(out, 'received-photo.bin'))), sha256(content))
    // the --out folder was created, and holds nothing but the received file
    assert.deepEqual(await readdir(out), ['received-photo.bin'])
    listener.kill()
  })

  it('through `npm run -w` from another folder: --file and --out are relative to that folder (INIT_CWD), a missing file is a one-line error', async () => {
    // as the README has it, but run from a folder outside the repository (npm --prefix finds the workspace)
    const cwd = await mkdtemp(join(dir, 'npm-'))
    await mkdir(join(cwd, 'inbox'))
    const npm = (args: string[]): Example => {
      // detached: its own process group, so kill() ends npm and the script it runs
      const child = spawn('npm', ['--prefix', ROOT, 'run', '--silent', '-w', 'examples/file-transfer', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
      const e = wrapChild(child)
      started.push(e)
      return e
    }
    const listener = npm(['listen', '--', '--discovery', url, '--api-key', apiKey, '--out', 'inbox'])
    await waitFor(() => listener.lines.some((l) => l.event === 'listening'), { timeoutMs: 30_000, message: `listener not up:\n${listener.stderr.join('\n')}` })
    const peerId = listener.lines.find((l) => l.event === 'listening').peer_id
    const content = randomBytes(100 * 1024)
    await writeFile(join(cwd, 'notes.txt'), content)
    const sender = npm(['send', '--', '--discovery', url, '--api-key', apiKey, '--peer', peerId, '--file', './notes.txt'])
    assert.equal(await sender.exited, 0, sender.stderr.join('\n'))
    assert.equal(sender.lines.find((l) => l.event === 'sent')?.intact, true)
    await waitFor(() => listener.lines.some((l) => l.event === 'received'), { timeoutMs: 10_000 })
    assert.equal(sha256(await readFile(join(cwd, 'inbox', 'received-notes.txt'))), sha256(content))

    const missing = npm(['send', '--', '--discovery', url, '--api-key', apiKey, '--peer', peerId, '--file', './README.md'])
    assert.equal(await missing.exited, 2)
    const ours = missing.stderr.filter((l) => l.startsWith('file-transfer:'))
    assert.deepEqual(ours, [`file-transfer: cannot read --file ./README.md (${join(cwd, 'README.md')}): no such file or directory`])
    assert.ok(!missing.stderr.some((l) => /^\s+at /.test(l)), `no stack trace:\n${missing.stderr.join('\n')}`)
    listener.kill()
  })

  exampleFailureCases(() => ({ api: url, apiKey, dir, started }), (args, opts) => runExample('', args, { js: true, ...opts }))
})

/** an npm child as an Example (JSON stdout lines, stderr lines) */
function wrapChild (child: ReturnType<typeof spawn>): Example {
  const lines: any[] = []
  const stderr: string[] = []
  let out = ''
  child.stdout!.on('data', (d) => {
    out += String(d)
    let nl
    while ((nl = out.indexOf('\n')) >= 0) {
      try { lines.push(JSON.parse(out.slice(0, nl))) } catch {}
      out = out.slice(nl + 1)
    }
  })
  let err = ''
  child.stderr!.on('data', (d) => {
    err += String(d)
    let nl
    while ((nl = err.indexOf('\n')) >= 0) { stderr.push(err.slice(0, nl)); err = err.slice(nl + 1) }
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  // npm runs the script in a child of its own: the group this test started (detached) goes
  return { lines, stderr, exited, kill: () => { try { process.kill(-child.pid!, 'SIGKILL') } catch {} } }
}
