/**
 * Programs (relays, interop peers) a bench spawns and reads line by line: the
 * last lines of stderr are kept for error reports, every child is killed when
 * the bench exits, is interrupted or the child's deadline passes.
 */
import type { ChildProcess } from 'node:child_process'
import { killChildrenOnSignals, killTrackedChildren, spawnLines } from '@pos-relay/testing'

// the children are tracked by @pos-relay/testing (killed when the bench exits or is interrupted)
killChildrenOnSignals('bench')
export const killAllProcesses = killTrackedChildren

export interface Process { child: ChildProcess, pid: number, stdout: string[], stderr: string[], exited: Promise<number | string>, stop: (sig?: NodeJS.Signals) => Promise<void> }

/** Spawns through `bash -c 'ulimit -n …; exec …'` so thousands of connections fit; the pid is the program's. */
export function startProcess (cmd: string, args: string[], opts: { timeoutMs: number, env?: Record<string, string> }): Process {
  const quoted = [cmd, ...args].map((a) => `'${a.replace(/'/g, '\'\\\'\'')}'`).join(' ')
  const p = spawnLines('bash', ['-c', `ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${quoted}`], {
    env: { ...process.env, LOG_LEVEL: 'warn', POS_RELAY_LOG_LEVEL: 'warn', ...opts.env },
    label: cmd,
    keepStderr: 200,
    timeoutMs: opts.timeoutMs
  })
  return {
    child: p.child,
    pid: p.child.pid!,
    stdout: p.stdout,
    stderr: p.stderr,
    exited: p.exited,
    async stop (sig = 'SIGINT') {
      if (p.child.exitCode != null || p.child.signalCode != null) return
      await p.kill(sig, 10_000)
    }
  }
}
