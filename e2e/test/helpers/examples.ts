/**
 * The file-transfer examples of the client libraries (examples/file-transfer
 * in JavaScript, the Rust crate's and the Go module's): they take the same
 * flags and print the same JSON lines, so any listener works with any sender.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { waitFor } from '@pos-relay/testing'

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

/** Runs the example binary `bin`, or the JavaScript example with `js: true`. */
export function runExample (bin: string, args: string[], opts: { js?: boolean } = {}): Example {
  const child = opts.js === true
    ? spawn(process.execPath, [JS_EXAMPLE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: any[] = []
  const stderr: string[] = []
  createInterface({ input: child.stdout }).on('line', (l) => { try { lines.push(JSON.parse(l)) } catch {} })
  createInterface({ input: child.stderr }).on('line', (l) => {
    stderr.push(l)
    if (process.env.E2E_VERBOSE != null) process.stderr.write(`[${opts.js === true ? 'js' : 'native'} ${args[0]}] ${l}\n`)
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
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
