/**
 * The file-transfer examples of the client libraries (examples/file-transfer
 * in JavaScript, the Rust crate's and the Go module's): they take the same
 * flags and print the same JSON lines, so any listener works with any sender.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { it } from 'node:test'
import { createRelayPeer } from '@pos-relay/client'
import { waitFor } from '@pos-relay/testing'
import { EXAMPLE_PROTOCOL } from './example-protocol.ts'

const JS_EXAMPLE = fileURLToPath(new URL('../../../examples/file-transfer/src/main.ts', import.meta.url))
const BUILD_SCRIPT = fileURLToPath(new URL('../../../scripts/build-clients.sh', import.meta.url))

/** A running example: its JSON stdout lines and its stderr, as they come. */
export interface Example {
  lines: any[]
  stderr: string[]
  exited: Promise<number | null>
  kill: () => void
}

/**
 * The binary of a client example (`rust-file-transfer`, `go-file-transfer`) if
 * scripts/build-clients.sh has built this exact version; never builds.
 */
export function cachedExample (name: string): string | undefined {
  try {
    const out = execFileSync('bash', [BUILD_SCRIPT, '--cached-only', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    return out.trim().split('\n').at(-1)
  } catch {
    return undefined
  }
}

export interface RunOptions {
  js?: boolean
  /** the working directory (relative --file / --out resolve against it) */
  cwd?: string
  env?: NodeJS.ProcessEnv
}

/** Runs the example binary `bin`, or the JavaScript example with `js: true`. */
export function runExample (bin: string, args: string[], opts: RunOptions = {}): Example {
  const spawnOpts = { stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], ...(opts.cwd != null ? { cwd: opts.cwd } : {}), ...(opts.env != null ? { env: opts.env } : {}) }
  const child = opts.js === true
    ? spawn(process.execPath, [JS_EXAMPLE, ...args], spawnOpts)
    : spawn(bin, args, spawnOpts)
  const lines: any[] = []
  const stderr: string[] = []
  const out = createInterface({ input: child.stdout }).on('line', (l) => { try { lines.push(JSON.parse(l)) } catch {} })
  const err = createInterface({ input: child.stderr }).on('line', (l) => {
    stderr.push(l)
    if (process.env.E2E_VERBOSE != null) process.stderr.write(`[${opts.js === true ? 'js' : 'native'} ${args[0]}] ${l}\n`)
  })
  // 'exit' can come before the last output is read (a CI run saw an empty stderr after exit code 2): the
  // exit code, once both streams have been read to their end
  const closed = (rl: ReturnType<typeof createInterface>): Promise<void> => new Promise((resolve) => rl.once('close', resolve))
  const exited = Promise.all([new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) })), closed(out), closed(err)]).then(([code]) => code)
  return { lines, stderr, exited, kill: () => { if (child.exitCode == null && child.signalCode == null) child.kill('SIGKILL') } }
}

/** One side of an exchange: a native example binary, or the JavaScript example (no `bin`). */
export interface ExampleSide {
  /** for messages and file names: js, rust, go */
  name: string
  bin?: string
}

export interface CrossLanguageOptions {
  listener: ExampleSide
  sender: ExampleSide
  api: string
  apiKey: string
  /** a folder for the file and the listener's output */
  dir: string
  /** every example started is pushed here, for the suite to kill in after() */
  started: Example[]
}

const start = (side: ExampleSide, args: string[]): Example => runExample(side.bin ?? '', args, { js: side.bin == null })

/**
 * One file (1 MiB of random bytes) from a sender to a listener of another
 * language, both with tickets from `apiKey`, through the relay discovery
 * lists: the sender must say it arrived intact, and the listener's copy must
 * have the same SHA-256.
 */
export async function exchangeAcrossLanguages (opts: CrossLanguageOptions): Promise<void> {
  const pair = `${opts.sender.name}-to-${opts.listener.name}`
  const out = join(opts.dir, `out-${pair}`)
  await mkdir(out)
  const listener = start(opts.listener, ['listen', '--discovery', opts.api, '--api-key', opts.apiKey, '--out', out])
  opts.started.push(listener)
  await waitFor(() => listener.lines.some((l) => l.event === 'listening'), { timeoutMs: 30_000, message: `${opts.listener.name} listener not up:\n${listener.stderr.join('\n')}` })
  const peerId = listener.lines.find((l) => l.event === 'listening').peer_id
  const file = join(opts.dir, `${pair}.bin`)
  const content = randomBytes(1024 * 1024)
  await writeFile(file, content)
  const sender = start(opts.sender, ['send', '--discovery', opts.api, '--api-key', opts.apiKey, '--peer', peerId, '--file', file])
  opts.started.push(sender)
  assert.equal(await sender.exited, 0, `${opts.sender.name} sender failed:\n${sender.stderr.join('\n')}`)
  assert.equal(sender.lines.find((l) => l.event === 'sent')?.intact, true)
  await waitFor(() => listener.lines.some((l) => l.event === 'received'), { timeoutMs: 10_000, message: `${opts.listener.name} listener printed no received line` })
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  assert.equal(sha(await readFile(join(out, `received-${pair}.bin`))), sha(content))
  listener.kill()
}

export interface FailureCaseContext {
  api: string
  apiKey: string
  /** a folder the cases make their own sub-folders in */
  dir: string
  /** every example started is pushed here, for the suite to kill in after() */
  started: Example[]
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
/** stderr without blank lines: what a user reads */
const said = (e: Example): string[] => e.stderr.filter((l) => l.trim() !== '')

/**
 * Starts a listener writing to `out` and resolves its peer id once it listens.
 */
async function startListener (ctx: FailureCaseContext, run: (args: string[], opts?: RunOptions) => Example, out: string, opts: RunOptions = {}): Promise<{ listener: Example, peerId: string }> {
  const listener = run(['listen', '--discovery', ctx.api, '--api-key', ctx.apiKey, '--out', out], opts)
  ctx.started.push(listener)
  await waitFor(() => listener.lines.some((l) => l.event === 'listening'), { timeoutMs: 30_000, message: `listener not up:\n${listener.stderr.join('\n')}` })
  return { listener, peerId: listener.lines.find((l) => l.event === 'listening').peer_id }
}

/**
 * A hand-made sender (the JS SDK, in this process): the example protocol's
 * header `<sha256> <name>\n`, then `body`; with `cut: true` the stream is
 * reset after the body instead of closed, as when a sender dies mid-file.
 * Resolves the listener's answer ('' when none).
 */
async function rawSend (ctx: FailureCaseContext, peerId: string, header: string, body: Buffer, opts: { cut?: boolean } = {}): Promise<string> {
  const peer = await createRelayPeer({ discoveryUrl: ctx.api, apiKey: ctx.apiKey, relayCount: 1 })
  try {
    const conn = await peer.relays.dial(peerId)
    const stream = await conn.newStream(EXAMPLE_PROTOCOL, { runOnLimitedConnection: true })
    stream.send(new TextEncoder().encode(header))
    if (!stream.send(body)) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
    if (opts.cut === true) {
      stream.abort(new Error('sender cut off'))
      return ''
    }
    await stream.close()
    let answer = ''
    try {
      for await (const chunk of stream) answer += new TextDecoder().decode(chunk.subarray())
    } catch {}
    return answer
  } finally {
    await peer.stop()
  }
}

/**
 * The example's failure cases, as `it` blocks of the calling describe, for
 * one implementation (`run` starts it): paths relative to the working
 * directory, a missing or unreadable --file and an unwritable --out (one line
 * on stderr, exit code 2, nothing sent), a transfer cut off mid-file and one
 * whose bytes do not match the announced SHA-256 (the listener keeps no file
 * that looks received, and no part file).
 */
export function exampleFailureCases (ctx: () => FailureCaseContext, run: (args: string[], opts?: RunOptions) => Example): void {
  const fresh = async (name: string): Promise<string> => await mkdtemp(join(ctx().dir, name + '-'))

  it('--file and --out are resolved against the working directory', async () => {
    const c = ctx()
    const cwd = await fresh('cwd')
    await mkdir(join(cwd, 'inbox'))
    const { listener, peerId } = await startListener(c, run, 'inbox', { cwd })
    const content = randomBytes(200 * 1024)
    await writeFile(join(cwd, 'note.bin'), content)
    const sender = run(['send', '--discovery', c.api, '--api-key', c.apiKey, '--peer', peerId, '--file', 'note.bin'], { cwd })
    c.started.push(sender)
    assert.equal(await sender.exited, 0, `sender failed:\n${sender.stderr.join('\n')}`)
    assert.equal(sender.lines.find((l) => l.event === 'sent')?.intact, true)
    assert.equal(sha256(await readFile(join(cwd, 'inbox', 'received-note.bin'))), sha256(content))
    listener.kill()
  })

  it('a missing --file: one line on stderr naming it, exit code 2, before any network work', async () => {
    const c = ctx()
    const cwd = await fresh('missing')
    // the peer id is never dialed: the file is checked first
    const sender = run(['send', '--discovery', c.api, '--api-key', c.apiKey, '--peer', '12D3KooWNvSZnPi3RrhrTwEY4LuuBeB6K6facKUCJcyWG1aoDd2p', '--file', './README.md'], { cwd })
    c.started.push(sender)
    assert.equal(await sender.exited, 2)
    const lines = said(sender)
    assert.equal(lines.length, 1, `expected one line, got:\n${lines.join('\n')}`)
    assert.match(lines[0]!, /cannot read --file \.\/README\.md/)
    assert.ok(lines[0]!.includes(join(cwd, 'README.md')), `the resolved path is named: ${lines[0]}`)
    assert.match(lines[0]!, /no such file/i)
    assert.deepEqual(sender.lines, [])
  })

  it('a --file that is a directory: one line, exit code 2', async () => {
    const c = ctx()
    const cwd = await fresh('dirfile')
    await mkdir(join(cwd, 'photos'))
    const sender = run(['send', '--discovery', c.api, '--api-key', c.apiKey, '--peer', '12D3KooWNvSZnPi3RrhrTwEY4LuuBeB6K6facKUCJcyWG1aoDd2p', '--file', 'photos'], { cwd })
    c.started.push(sender)
    assert.equal(await sender.exited, 2)
    const lines = said(sender)
    assert.equal(lines.length, 1, `expected one line, got:\n${lines.join('\n')}`)
    assert.match(lines[0]!, /cannot read --file photos .*is a directory/i)
  })

  it('an --out that is a file: the listener says so in one line and exits 2', async () => {
    const c = ctx()
    const cwd = await fresh('outfile')
    await writeFile(join(cwd, 'taken'), 'x')
    const listener = run(['listen', '--discovery', c.api, '--api-key', c.apiKey, '--out', 'taken'], { cwd })
    c.started.push(listener)
    assert.equal(await listener.exited, 2)
    const lines = said(listener)
    assert.equal(lines.length, 1, `expected one line, got:\n${lines.join('\n')}`)
    assert.match(lines[0]!, /cannot write to --out taken .*not a directory/i)
  })

  it('a transfer cut off mid-file leaves no received file and no part file', async () => {
    const c = ctx()
    const out = await fresh('cut')
    const { listener, peerId } = await startListener(c, run, out)
    const content = randomBytes(512 * 1024)
    await rawSend(c, peerId, `${sha256(content)} cut.bin\n`, content.subarray(0, 256 * 1024), { cut: true })
    await waitFor(() => listener.lines.some((l) => l.event === 'receive_failed'), { timeoutMs: 15_000, message: `no receive_failed:\n${listener.stderr.join('\n')}` })
    assert.equal(listener.lines.some((l) => l.event === 'received'), false)
    assert.deepEqual(await readdir(out), [])
    listener.kill()
  })

  it('bytes that do not match the announced SHA-256 are not kept; the sender gets the real digest', async () => {
    const c = ctx()
    const out = await fresh('mismatch')
    const { listener, peerId } = await startListener(c, run, out)
    const content = randomBytes(64 * 1024)
    const answer = await rawSend(c, peerId, `${sha256(Buffer.from('something else'))} wrong.bin\n`, content)
    assert.equal(answer, sha256(content))
    await waitFor(() => listener.lines.some((l) => l.event === 'receive_failed'), { timeoutMs: 15_000, message: `no receive_failed:\n${listener.stderr.join('\n')}` })
    assert.equal(listener.lines.some((l) => l.event === 'received'), false)
    assert.deepEqual(await readdir(out), [])
    listener.kill()
  })
}
