import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './ports.js'
import { killChildrenOnUnhandledSignals, trackChild } from './children.js'

export interface StartRedisOptions {
  /** default: a free loopback port */
  port?: number
  /** how long to wait for the first PONG; default 10000 */
  startTimeoutMs?: number
  /** extra redis-server arguments */
  args?: string[]
  /**
   * Keep data across kill()/restart(), like a production Redis: an
   * append-only file fsynced on every write in one directory shared by the
   * restarts (removed when the server is stopped for good).
   */
  persistent?: boolean
}

export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  readonly url: string
  readonly port: number
  /** pid of the current redis-server process (changes after restart()) */
  readonly pid: number
  /** SIGTERM and wait for exit */
  stop(): Promise<void>
  /** SIGKILL and wait for exit (simulates a crash / outage) */
  kill(): Promise<void>
  /** start again on the same port (stopping the current process first if it still runs) */
  restart(): Promise<void>
}

interface Running {
  child: ChildProcess
  dir: string
  /** the directory outlives this process (persistent servers) */
  keepDir?: boolean
}

// Every redis-server we started is tracked (children.ts), so a crashing or forgetful test process
// does not leave orphans (or their folders) behind.

let resolvedBinary: string | undefined

function isExecutable (path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

function findBinary (): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean)
  return [...dirs.map((d) => join(d, 'redis-server')), '/usr/bin/redis-server'].find(isExecutable)
}

function redisBinary (): string {
  resolvedBinary ??= findBinary()
  if (resolvedBinary) return resolvedBinary
  if (process.getuid?.() !== 0) {
    throw new Error('redis-server not found on PATH or at /usr/bin/redis-server; install it with `apt-get install -y redis-server`')
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const install = () => execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'redis-server'], { stdio: 'ignore', env })
  try {
    install()
  } catch {
    // Package lists may be missing in a fresh container.
    try {
      execFileSync('apt-get', ['update'], { stdio: 'ignore', env })
      install()
    } catch (err) {
      throw new Error('redis-server is not installed and `apt-get install -y redis-server` failed', { cause: err })
    }
  }
  resolvedBinary = findBinary()
  if (!resolvedBinary) throw new Error('installed redis-server but still cannot find the binary')
  return resolvedBinary
}

/** One RESP PING over a raw socket; true only on +PONG. */
function ping (port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    let reply = ''
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1')
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
  })
}

function exited (child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

async function waitExit (r: Running, escalateAfterMs?: number): Promise<void> {
  if (!exited(r.child)) {
    r.child.ref() // keep the event loop alive while we wait
    const exit = new Promise<void>((resolve) => r.child.once('exit', () => resolve()))
    if (escalateAfterMs === undefined) {
      await exit
    } else {
      const timer = setTimeout(() => r.child.kill('SIGKILL'), escalateAfterMs)
      await exit
      clearTimeout(timer)
    }
  }
  if (r.keepDir !== true) rmSync(r.dir, { recursive: true, force: true })
}

function readLog (dir: string): string {
  try {
    return readFileSync(join(dir, 'redis.log'), 'utf8').trim().split('\n').slice(-10).join('\n')
  } catch {
    return '(no log)'
  }
}

async function spawnRedis (port: number, opts: StartRedisOptions, persistentDir?: string): Promise<Running> {
  const bin = redisBinary()
  killChildrenOnUnhandledSignals()
  const dir = persistentDir ?? mkdtempSync(join(tmpdir(), 'pos-relay-redis-'))
  const persistence = persistentDir != null ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']
  // prettier-ignore
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence,
    '--daemonize', 'no', '--dir', dir, '--logfile', join(dir, 'redis.log'), ...(opts.args ?? []),
  ]
  const child = trackChild(spawn(bin, args, { stdio: 'ignore' }), () => { rmSync(dir, { recursive: true, force: true }) })
  const running: Running = { child, dir, keepDir: persistentDir != null }
  // Do not let a forgotten server keep the test process alive; the exit guard kills it.
  child.unref()

  const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000)
  while (Date.now() < deadline) {
    if (exited(child)) break
    if (await ping(port)) return running
    await sleep(20)
  }
  const log = readLog(dir)
  child.kill('SIGKILL')
  await waitExit(running)
  throw new Error(`redis-server on port ${port} did not become ready:\n${log}`)
}

/** Starts a throwaway, non-persistent redis-server on 127.0.0.1. */
export async function startRedis (opts: StartRedisOptions = {}): Promise<RedisServer> {
  let port = opts.port ?? (await freePort())
  const persistentDir = opts.persistent === true ? mkdtempSync(join(tmpdir(), 'pos-relay-redis-data-')) : undefined
  let current: Running
  try {
    current = await spawnRedis(port, opts, persistentDir)
  } catch (err) {
    if (opts.port !== undefined) throw err
    // The free port may have been taken between freePort() and bind; try once more.
    port = await freePort()
    current = await spawnRedis(port, opts, persistentDir)
  }

  const stopProcess = async () => {
    current.child.kill('SIGTERM')
    await waitExit(current, 5000)
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid () {
      return current.child.pid ?? -1
    },
    async stop () {
      await stopProcess()
      if (persistentDir != null) rmSync(persistentDir, { recursive: true, force: true })
    },
    async kill () {
      current.child.kill('SIGKILL')
      await waitExit(current)
    },
    async restart () {
      if (!exited(current.child)) await stopProcess()
      current = await spawnRedis(port, opts, persistentDir)
    },
  }
}
