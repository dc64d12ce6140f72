/**
 * The child side of children.ts: announce readiness with one JSON line on
 * stdout, answer JSON-line requests from stdin, and exit when stdin closes
 * (the bench went away) or on SIGTERM/SIGINT after running `onStop`.
 */
import { createInterface } from 'node:readline'
import { writeHeapSnapshot } from 'node:v8'

export type Handler = (params: any) => unknown | Promise<unknown>

function write (msg: unknown): void {
  process.stdout.write(JSON.stringify(msg) + '\n')
}

/** Commands every child answers. */
const builtins: Record<string, Handler> = {
  /** process.memoryUsage() in MiB: where the RSS is (JS heap vs Buffers/ArrayBuffers) */
  memoryUsage (params?: { gc?: boolean }) {
    // with node --expose-gc, {gc: true} first collects garbage, so the numbers are live data
    const gc = (globalThis as { gc?: () => void }).gc
    if (params?.gc === true && gc != null) gc()
    const m = process.memoryUsage()
    const mib = (n: number): number => n / 1048576
    return { rssMiB: mib(m.rss), heapTotalMiB: mib(m.heapTotal), heapUsedMiB: mib(m.heapUsed), externalMiB: mib(m.external), arrayBuffersMiB: mib(m.arrayBuffers) }
  }
}

/** Diagnostics: writes a V8 heap snapshot (for debugging memory growth, not used by run.ts). */
builtins.heapSnapshot = (params?: { file?: string }) => writeHeapSnapshot(params?.file)

export function serve (info: Record<string, unknown>, handlers: Record<string, Handler>, onStop: () => Promise<void>): void {
  let stopping = false
  const stop = (code: number): void => {
    if (stopping) return
    stopping = true
    // bounded: a hanging stop must not keep the process alive
    setTimeout(() => process.exit(code), 5000).unref()
    onStop().catch((err) => { process.stderr.write(`stop failed: ${err?.stack ?? err}\n`) }).finally(() => process.exit(code))
  }
  process.once('SIGTERM', () => { stop(0) })
  process.once('SIGINT', () => { stop(0) })
  process.on('uncaughtException', (err) => { process.stderr.write(`uncaught: ${err?.stack ?? err}\n`) })
  process.on('unhandledRejection', (err: any) => { process.stderr.write(`unhandled rejection: ${err?.stack ?? err}\n`) })

  const rl = createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    let req: { id: number, cmd: string, params: unknown }
    try { req = JSON.parse(line) } catch { return }
    const handler = handlers[req.cmd] ?? builtins[req.cmd]
    if (handler == null) { write({ id: req.id, ok: false, error: `unknown command ${req.cmd}` }); return }
    Promise.resolve()
      .then(() => handler(req.params))
      .then((result) => { write({ id: req.id, ok: true, result }) })
      .catch((err) => { write({ id: req.id, ok: false, error: String(err?.stack ?? err) }) })
  })
  rl.on('close', () => { stop(0) })
  write({ ready: true, pid: process.pid, ...info })
}
