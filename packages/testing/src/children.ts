import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

/**
 * The one registry of the child processes tests, benches and labs start: each is SIGKILLed when
 * this process exits, so a failed or interrupted run leaves no relay, peer or operator behind.
 */
const live = new Map<ChildProcess, (() => void) | undefined>()
let exitHook = false

/** Tracks `child` until it exits; `cleanup` (synchronous, e.g. removing its data folder) runs if it is killed at exit. */
export function trackChild<C extends ChildProcess> (child: C, cleanup?: () => void): C {
  if (!exitHook) {
    exitHook = true
    process.on('exit', killTrackedChildren)
  }
  live.set(child, cleanup)
  child.once('exit', () => { live.delete(child) })
  return child
}

/** SIGKILLs every tracked child still running, then runs its cleanup (synchronous: safe in an 'exit' handler). */
export function killTrackedChildren (): void {
  for (const [c, cleanup] of live) {
    try { c.kill('SIGKILL') } catch {}
    try { cleanup?.() } catch {}
  }
  live.clear()
}

let signalHook = false
/** For runs started from a terminal (benches): on SIGINT, SIGTERM or SIGHUP kill the children too, then exit 130. */
export function killChildrenOnSignals (label: string): void {
  if (signalHook) return
  signalHook = true
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${label}: ${sig}, killing child processes\n`)
      killTrackedChildren()
      process.exit(130)
    })
  }
}

let reraiseHook = false
/**
 * For libraries (redis, the kube control plane): on SIGINT, SIGTERM or SIGHUP kill the tracked
 * children, then re-raise so the default action still applies. Only signals nobody else handles
 * are taken over.
 */
export function killChildrenOnUnhandledSignals (): void {
  if (reraiseHook) return
  reraiseHook = true
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(sig) > 0) continue
    process.once(sig, () => {
      killTrackedChildren()
      process.kill(process.pid, sig)
    })
  }
}

export interface LineProcess {
  child: ChildProcess
  /** every stdout line so far */
  stdout: string[]
  /** stderr lines so far (the last `keepStderr` of them) */
  stderr: string[]
  /** resolves with the exit code (or signal name) */
  exited: Promise<number | string>
  /** resolves with the first stdout line that is a JSON object satisfying `match` */
  waitForJson: (match: (obj: any) => boolean, timeoutMs?: number) => Promise<any>
  /** sends `signal` (SIGTERM), then SIGKILL after `graceMs` if given; resolves with the exit code */
  kill: (signal?: NodeJS.Signals, graceMs?: number) => Promise<number | string>
}

export interface SpawnLinesOptions {
  /** the child's whole environment (default: this process's) */
  env?: NodeJS.ProcessEnv
  /** written to stdin, which is then closed; without it stdin is closed at once */
  input?: string
  /** prefix of echoed lines and errors (default: the command) */
  label?: string
  /** echo every line to this process's stderr (a VERBOSE switch) */
  echo?: boolean
  /** stderr lines kept (default all) */
  keepStderr?: number
  /** SIGKILL the child after this long */
  timeoutMs?: number
  /** waitForJson looks at stderr lines too (pino logs there, a CLI's result lines on stdout) */
  jsonOnStderr?: boolean
}

const parseJson = (line: string): any => { try { return JSON.parse(line) } catch { return undefined } }

/** Spawns `cmd`, tracked, with its output collected line by line. */
export function spawnLines (cmd: string, args: string[], opts: SpawnLinesOptions = {}): LineProcess {
  const child = trackChild(spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] }))
  child.stdin!.on('error', () => {}) // EPIPE after the child died shows in its exit
  child.stdin!.end(opts.input)
  const label = opts.label ?? cmd
  const stdout: string[] = []
  const stderr: string[] = []
  const waiters = new Set<(line: string) => void>()
  createInterface({ input: child.stdout! }).on('line', (line) => {
    stdout.push(line)
    if (opts.echo === true) process.stderr.write(`[${label}] ${line}\n`)
    for (const w of waiters) w(line)
  })
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr.push(line)
    if (opts.keepStderr != null && stderr.length > opts.keepStderr) stderr.shift()
    if (opts.echo === true) process.stderr.write(`[${label}!] ${line}\n`)
    if (opts.jsonOnStderr === true) for (const w of waiters) w(line)
  })
  const exited = new Promise<number | string>((resolve) => { child.once('exit', (code, signal) => { resolve(code ?? signal ?? -1) }) })
  if (opts.timeoutMs != null) {
    const timer = setTimeout(() => { stderr.push(`killed after ${opts.timeoutMs} ms`); child.kill('SIGKILL') }, opts.timeoutMs)
    void exited.then(() => { clearTimeout(timer) })
  }
  return {
    child,
    stdout,
    stderr,
    exited,
    async waitForJson (match, timeoutMs = 20_000) {
      const found = [...stdout, ...(opts.jsonOnStderr === true ? stderr : [])].map(parseJson).find((o) => o != null && match(o))
      if (found != null) return found
      return await new Promise((resolve, reject) => {
        const onLine = (line: string): void => {
          const obj = parseJson(line)
          if (obj != null && match(obj)) { clearTimeout(timer); waiters.delete(onLine); resolve(obj) }
        }
        const timer = setTimeout(() => {
          waiters.delete(onLine)
          reject(new Error(`timed out waiting for output of ${label}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.slice(-20).join('\n')}`))
        }, timeoutMs)
        waiters.add(onLine)
        void exited.then((code) => {
          if (!waiters.has(onLine)) return
          clearTimeout(timer); waiters.delete(onLine)
          reject(new Error(`${label} exited (${code}) before the expected output\nstderr:\n${stderr.slice(-20).join('\n')}`))
        })
      })
    },
    async kill (signal = 'SIGTERM', graceMs) {
      if (child.exitCode == null && child.signalCode == null) child.kill(signal)
      const t = graceMs != null ? setTimeout(() => child.kill('SIGKILL'), graceMs) : undefined
      const code = await exited
      clearTimeout(t)
      return code
    }
  }
}
