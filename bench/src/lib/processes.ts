/**
 * Programs (relays, interop peers) a bench spawns and reads line by line: the
 * last lines of stderr are kept for error reports, every child is killed when
 * the bench exits, is interrupted or the child's deadline passes.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

const children = new Set<ChildProcess>()
export function killAllProcesses (): void { for (const c of children) { try { c.kill('SIGKILL') } catch {} } }
process.on('exit', killAllProcesses)
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { killAllProcesses(); process.exit(130) })

export interface Process { child: ChildProcess, pid: number, stdout: string[], stderr: string[], exited: Promise<number | string>, stop: (sig?: NodeJS.Signals) => Promise<void> }

/** Spawns through `bash -c 'ulimit -n …; exec …'` so thousands of connections fit; the pid is the program's. */
export function startProcess (cmd: string, args: string[], opts: { timeoutMs: number, env?: Record<string, string> }): Process {
  const quoted = [cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const child = spawn('bash', ['-c', `ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${quoted}`], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.add(child)
  const stdout: string[] = []
  const stderr: string[] = []
  createInterface({ input: child.stdout! }).on('line', (l) => stdout.push(l))
  createInterface({ input: child.stderr! }).on('line', (l) => { stderr.push(l); if (stderr.length > 200) stderr.shift() })
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, sig) => { children.delete(child); resolve(code ?? sig ?? -1) }))
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs)
  void exited.then(() => clearTimeout(timer))
  return {
    child,
    pid: child.pid!,
    stdout,
    stderr,
    exited,
    async stop (sig = 'SIGINT') {
      if (child.exitCode != null || child.signalCode != null) return
      child.kill(sig)
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(t)
    }
  }
}
