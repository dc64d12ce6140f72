/**
 * Spawning bench child processes and talking to them.
 *
 * A child prints exactly one `{"ready":true,...}` JSON line on stdout once it
 * is up (see rpc-child.ts); after that, every stdout line is the JSON answer
 * to one request written as a JSON line on its stdin. stderr is kept (last
 * lines) for error messages. Every child is registered so it is killed when
 * the bench exits, fails or is interrupted; and a child exits by itself when
 * its stdin closes, so even a SIGKILLed bench leaves no orphans.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { killChildrenOnSignals, killTrackedChildren, trackChild } from '@pos-relay/testing'
import { fileURLToPath } from 'node:url'

export interface SpawnOptions {
  /** shown in errors */
  name: string
  args?: string[]
  /** extra node flags, e.g. --cpu-prof */
  nodeArgs?: string[]
  env?: Record<string, string>
  /** how long to wait for the ready line; default 30 s */
  readyTimeoutMs?: number
}

export interface Child<Info = any> {
  readonly name: string
  readonly pid: number
  /** the ready line */
  readonly info: Info
  /** sends one request and waits for its answer */
  call: <T = any>(cmd: string, params?: unknown, timeoutMs?: number) => Promise<T>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited */
  stop: (graceMs?: number) => Promise<void>
  readonly exited: boolean
}

/** Kills every child still running (SIGKILL): the bench's children are tracked by @pos-relay/testing. */
export const killAllChildren = killTrackedChildren

export function benchScript (name: string): string {
  return fileURLToPath(new URL(`../${name}`, import.meta.url))
}

export async function spawnChild<Info = any> (script: string, opts: SpawnOptions): Promise<Child<Info>> {
  killChildrenOnSignals('bench')
  const proc = trackChild(spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...(opts.args ?? [])], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env }
  }))
  const stderrTail: string[] = []
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    if (process.env.BENCH_VERBOSE === '1') process.stderr.write(`[${opts.name}] ${line}\n`)
    stderrTail.push(line)
    if (stderrTail.length > 20) stderrTail.shift()
  })
  const describe = (): string => stderrTail.length > 0 ? `\n--- ${opts.name} stderr (tail) ---\n${stderrTail.join('\n')}` : ''

  let exited = false
  const exit = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => {
      exited = true
      const err = new Error(`${opts.name} exited (code ${code}, signal ${signal})${describe()}`)
      for (const p of pending.values()) p.reject(err)
      pending.clear()
      onReadyFail?.(err)
      resolve()
    })
  })
  proc.stdin!.on('error', () => {}) // EPIPE after the child died is reported via 'exit'

  const pending = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  let onReady: ((info: any) => void) | undefined
  let onReadyFail: ((err: Error) => void) | undefined
  const ready = new Promise<Info>((resolve, reject) => { onReady = resolve; onReadyFail = reject })
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    let msg: any
    try { msg = JSON.parse(line) } catch { return } // stray output
    if (msg?.ready === true && onReady != null) {
      const r = onReady
      onReady = undefined
      onReadyFail = undefined
      r(msg)
      return
    }
    const p = pending.get(msg?.id)
    if (p == null) return
    pending.delete(msg.id)
    if (msg.ok === true) p.resolve(msg.result)
    else p.reject(new Error(`${opts.name}: ${msg.error}${describe()}`))
  })

  const stop = async (graceMs = 5000): Promise<void> => {
    if (exited) return
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
    await exit
    clearTimeout(timer)
  }

  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000
  let timer: NodeJS.Timeout | undefined
  let info: Info
  try {
    info = await Promise.race([
      ready,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${opts.name} not ready after ${readyTimeoutMs} ms${describe()}`)), readyTimeoutMs)
      })
    ])
  } catch (err) {
    proc.kill('SIGKILL')
    await exit
    throw err
  } finally {
    clearTimeout(timer)
  }

  let nextId = 1
  return {
    name: opts.name,
    pid: proc.pid!,
    info,
    get exited () { return exited },
    stop,
    async call<T> (cmd: string, params?: unknown, timeoutMs = 60_000): Promise<T> {
      if (exited) throw new Error(`${opts.name} has exited${describe()}`)
      const id = nextId++
      const answer = new Promise<T>((resolve, reject) => { pending.set(id, { resolve, reject }) })
      proc.stdin!.write(JSON.stringify({ id, cmd, params }) + '\n')
      let t: NodeJS.Timeout | undefined
      try {
        return await Promise.race([
          answer,
          new Promise<never>((_resolve, reject) => {
            t = setTimeout(() => reject(new Error(`${opts.name}: ${cmd} timed out after ${timeoutMs} ms${describe()}`)), timeoutMs)
          })
        ])
      } finally {
        clearTimeout(t)
        pending.delete(id)
      }
    }
  }
}
