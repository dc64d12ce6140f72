/**
 * The flood generator of the limits bench, in its own process (so the flood
 * does not share an event loop with the legitimate peer or the driver).
 * Driven by JSON-line requests (see ../lib/children.ts):
 *   flood {port, mode, rate, durationMs, block, addresses, offset, connectTimeoutMs, maxOpen}
 *     opens `rate` new TCP connections per second to 127.0.0.1:<port> for
 *     `durationMs`, each bound to a loopback source address;
 *     mode 'connect':  from a rotating set of `addresses` source addresses,
 *                      dropped (FIN) as soon as the TCP handshake completes;
 *     mode 'halfopen': every connection from its own source address
 *                      (index offset, offset+1, ...), kept idle (never sends
 *                      a byte) until the relay closes it or the step ends.
 *   Answers with counts; every socket is closed before it answers.
 */
import { connect, type Socket } from 'node:net'
import { serve } from '../lib/rpc-child.ts'

/** i-th loopback address of a block: 127.<block + hi>.<mid>.<1..254> */
function loopbackAddress (block: number, i: number): string {
  const lo = 1 + (i % 254)
  const mid = Math.floor(i / 254) % 256
  const hi = Math.floor(i / (254 * 256))
  return `127.${block + hi}.${mid}.${lo}`
}

interface FloodParams {
  port: number
  mode: 'connect' | 'halfopen'
  rate: number
  durationMs: number
  block: number
  /** connect mode: how many source addresses rotate */
  addresses?: number
  /** halfopen mode: index of the first source address */
  offset?: number
  connectTimeoutMs?: number
  /** never more sockets open at once than this (file descriptors) */
  maxOpen?: number
}

async function flood (p: FloodParams): Promise<Record<string, unknown>> {
  const connectTimeoutMs = p.connectTimeoutMs ?? 3000
  const maxOpen = p.maxOpen ?? 15_000
  const open = new Set<Socket>()
  const errors: Record<string, number> = {}
  // what the step reports, counted as it runs
  const count = { attempted: 0, connected: 0, connectTimeouts: 0, skippedFdCap: 0, closedByRelay: 0, lateTicks: 0 }
  let maxOpenSeen = 0
  const heldMs: number[] = []
  const connectMs: number[] = []
  let stopping = false

  const openOne = (i: number): void => {
    const localAddress = p.mode === 'connect'
      ? loopbackAddress(p.block, i % (p.addresses ?? 200))
      : loopbackAddress(p.block, (p.offset ?? 0) + i)
    const t0 = performance.now()
    let tConnected = 0
    const s = connect({ host: '127.0.0.1', port: p.port, localAddress })
    open.add(s)
    maxOpenSeen = Math.max(maxOpenSeen, open.size)
    count.attempted++
    const timer = setTimeout(() => { count.connectTimeouts++; s.destroy() }, connectTimeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      count.connected++
      tConnected = performance.now()
      connectMs.push(tConnected - t0)
      if (p.mode === 'connect') s.destroy()
    })
    s.on('error', (err: NodeJS.ErrnoException) => { errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1 })
    s.on('data', () => {}) // half-open: whatever the relay might send is ignored
    s.once('close', () => {
      clearTimeout(timer)
      open.delete(s)
      if (p.mode === 'halfopen' && tConnected > 0 && !stopping) {
        count.closedByRelay++
        heldMs.push(performance.now() - tConnected)
      }
    })
  }

  const t0 = performance.now()
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = performance.now() - t0
      if (elapsed >= p.durationMs) { clearInterval(tick); resolve(); return }
      const due = Math.floor(p.rate * elapsed / 1000)
      // at most 50 ms worth per tick: a stalled generator does not burst
      const batch = Math.min(due - count.attempted - count.skippedFdCap, Math.max(1, Math.ceil(p.rate / 20)))
      if (due - count.attempted - count.skippedFdCap > batch) count.lateTicks++
      for (let i = 0; i < batch; i++) {
        if (open.size >= maxOpen) { count.skippedFdCap++; continue }
        openOne(count.attempted + count.skippedFdCap)
      }
    }, 5)
  })
  const wallMs = performance.now() - t0
  const stillOpen = open.size
  stopping = true
  for (const s of open) s.destroy()
  // let the close events run
  await new Promise((resolve) => setTimeout(resolve, 50))
  const sorted = (a: number[]): number[] => [...a].sort((x, y) => x - y)
  const pick = (a: number[], q: number): number | null => a.length === 0 ? null : sorted(a)[Math.min(a.length - 1, Math.max(0, Math.ceil(q * a.length) - 1))]!
  return {
    mode: p.mode,
    targetRate: p.rate,
    wallMs,
    attempted: count.attempted,
    connected: count.connected,
    attemptedPerSec: count.attempted / (wallMs / 1000),
    connectedPerSec: count.connected / (wallMs / 1000),
    connectTimeouts: count.connectTimeouts,
    skippedFdCap: count.skippedFdCap,
    lateTicks: count.lateTicks,
    errors,
    maxOpen: maxOpenSeen,
    stillOpenAtEnd: stillOpen,
    closedByRelay: count.closedByRelay,
    heldMsP50: pick(heldMs, 0.5),
    heldMsMax: pick(heldMs, 1),
    connectMsP50: pick(connectMs, 0.5),
    connectMsP99: pick(connectMs, 0.99)
  }
}

serve({ kind: 'flood' }, { flood }, async () => {})
