import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The `pos-relay` executable as built in this checkout. */
export const CLI = fileURLToPath(new URL('../../../packages/cli/bin/pos-relay.js', import.meta.url).href)

export interface CliProcess {
  child: ChildProcess
  /** every stdout line so far */
  stdout: string[]
  /** every stderr line so far (JSON logs) */
  stderr: string[]
  /** resolves with the first stdout JSON object satisfying `match` */
  waitForJson: (match: (obj: any) => boolean, timeoutMs?: number) => Promise<any>
  /** resolves with the exit code (or signal name) */
  exited: Promise<number | string>
  kill: (signal?: NodeJS.Signals) => Promise<number | string>
}

const running = new Set<ChildProcess>()
process.on('exit', () => { for (const c of running) c.kill('SIGKILL') })

/** Runs `pos-relay ...args` with this Node (24) as a child process. */
export function spawnCli (args: string[], opts: { env?: Record<string, string>, input?: string } = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, POS_RELAY_LOG_LEVEL: process.env.POS_RELAY_LOG_LEVEL ?? 'info', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  running.add(child)
  if (opts.input != null) child.stdin!.end(opts.input)
  else child.stdin!.end()
  const stdout: string[] = []
  const stderr: string[] = []
  const waiters = new Set<(line: string) => void>()
  createInterface({ input: child.stdout! }).on('line', (line) => { stdout.push(line); for (const w of waiters) w(line) })
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr.push(line)
    if (process.env.E2E_VERBOSE != null) process.stderr.write(`[pos-relay ${args[0]}] ${line}\n`)
  })
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => { running.delete(child); resolve(code ?? signal ?? -1) })
  })
  const parse = (line: string): any => { try { return JSON.parse(line) } catch { return undefined } }
  return {
    child,
    stdout,
    stderr,
    exited,
    async waitForJson (match, timeoutMs = 20_000) {
      const found = stdout.map(parse).find((o) => o != null && match(o))
      if (found != null) return found
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(onLine)
          reject(new Error(`timed out waiting for output of pos-relay ${args.join(' ')}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.slice(-20).join('\n')}`))
        }, timeoutMs)
        const onLine = (line: string): void => {
          const obj = parse(line)
          if (obj != null && match(obj)) { clearTimeout(timer); waiters.delete(onLine); resolve(obj) }
        }
        waiters.add(onLine)
        void exited.then((code) => {
          if (!waiters.has(onLine)) return
          clearTimeout(timer); waiters.delete(onLine)
          reject(new Error(`pos-relay ${args.join(' ')} exited (${code}) before the expected output\nstderr:\n${stderr.slice(-20).join('\n')}`))
        })
      })
    },
    async kill (signal = 'SIGTERM') {
      if (child.exitCode == null && child.signalCode == null) child.kill(signal)
      return await exited
    }
  }
}

/** Runs a short CLI command to completion. */
export async function runCli (args: string[], opts: { env?: Record<string, string>, input?: string } = {}): Promise<{ code: number | string, stdout: string, stderr: string }> {
  const p = spawnCli(args, opts)
  const code = await p.exited
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') }
}
