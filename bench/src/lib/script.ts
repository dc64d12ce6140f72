/**
 * The frame of a bench script: a deadline that kills everything, Ctrl-C and
 * SIGTERM handling, and cleanup (child processes) on every way out, so a
 * bench never leaves processes behind; plus `attempt`, which records a
 * failed part and goes on with the others.
 */

export type Log = (msg: string) => void

/** A logger that prefixes `[name hh:mm:ss]` and writes to stderr. */
export function benchLog (name: string): Log {
  return (msg) => { process.stderr.write(`[${name} ${new Date().toISOString().slice(11, 19)}] ${msg}\n`) }
}

/** The first line of an error's message. */
export const errMsg = (err: any): string => String(err?.message ?? err).split('\n')[0]!

/** Runs `fn`; on failure logs the stack, records `name: message` in `errors` and returns normally. */
export function attempter (errors: string[], log: Log): (name: string, fn: () => Promise<void>) => Promise<void> {
  return async (name, fn) => {
    try {
      await fn()
    } catch (err: any) {
      log(`${name} FAILED: ${err?.stack ?? err}`)
      errors.push(`${name}: ${errMsg(err)}`)
    }
  }
}

/**
 * Runs `main` with a deadline of `deadlineS` seconds (then: cleanup, exit 2),
 * cleanup on SIGINT / SIGTERM / SIGHUP (exit 130), on exit and after `main`;
 * a thrown error is logged and sets exit code 1. `cleanup` must be
 * synchronous (it also runs in the 'exit' handler).
 */
export async function runScript (name: string, opts: { deadlineS: number, cleanup: () => void, log: Log }, main: () => Promise<void>): Promise<void> {
  const watchdog = setTimeout(() => {
    opts.log(`deadline of ${opts.deadlineS} s exceeded: killing everything`)
    opts.cleanup()
    process.exit(2)
  }, opts.deadlineS * 1000)
  watchdog.unref()
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${name}: ${sig}, killing child processes\n`)
      opts.cleanup()
      process.exit(130) // the 'exit' handler of @pos-relay/testing kills redis-server
    })
  }
  process.once('exit', opts.cleanup)
  try {
    await main()
  } catch (err: any) {
    opts.log(`failed: ${err?.stack ?? err}`)
    process.exitCode = 1
  } finally {
    clearTimeout(watchdog)
    opts.cleanup()
  }
}
