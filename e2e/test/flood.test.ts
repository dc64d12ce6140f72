/**
 * Floods, bounded in count and time, from many loopback source addresses
 * (127.0.0.0/8): connection attempts, idle half-open TCP connections and
 * slow HTTP clients against the relay's metrics port and the discovery API.
 * Idle half-open connections beyond the handshake queue must be evicted
 * (counted in the relay's metrics) and never lock a legitimate peer out; a
 * legitimate peer must keep reserving throughout (behaviour, not latency:
 * the latencies are printed, not asserted); the relay's connection count
 * must return to its baseline afterwards.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { type Multiaddr } from '@multiformats/multiaddr'
import { freePort, waitFor, scrapeMetric } from '@pos-relay/testing'
import { createLibp2p } from 'libp2p'
import { hopRequest, RESERVE } from '../../relay-image/test/hop-client.ts'
import { startLocalDiscovery, startLocalRelay, type LocalDiscovery, type LocalRelay } from './helpers/relay.ts'

const FLOOD_MS = 8_000
const CONNECT_ATTEMPTS = 4_000
/** more idle half-open connections than the relay's handshake queue (MAX_PENDING), and than upstream's cap (4 × MAX_PENDING) */
const HALF_OPEN = 600
const MAX_PENDING = 128
/** longer than the test: idle handshakes are only ever cleared by eviction while it runs */
const HANDSHAKE_TIMEOUT_S = 120
const SLOW_HTTP = 100

const ip = (block: number, i: number): string => `127.${block}.${(i >> 8) & 255}.${(i & 255) || 1}`

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const metric = scrapeMetric

async function rssMiB (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024
}

/** One legitimate peer: fresh node, dial, RESERVE; resolves with ms and status. */
async function legitReservation (relay: Multiaddr): Promise<{ ms: number, status: number | undefined }> {
  const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
  const start = performance.now()
  try {
    const { status } = await hopRequest(node, relay, RESERVE)
    return { ms: performance.now() - start, status }
  } finally {
    await node.stop()
  }
}

describe('flood resistance', { timeout: 120_000 }, () => {
  let dir: string
  let relay: LocalRelay
  let discovery: LocalDiscovery

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pos-relay-flood-'))
    relay = await startLocalRelay({ dir, port: await freePort(), args: ['--ip-connections-per-second', '100', '--max-pending-connections', String(MAX_PENDING), '--handshake-timeout', String(HANDSHAKE_TIMEOUT_S)] })
    discovery = await startLocalDiscovery({ secret: 's' })
  })

  after(async () => {
    await relay?.proc.kill('SIGKILL')
    await discovery?.proc.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('keeps serving a legitimate peer during connect, half-open and slow-HTTP floods, and recovers', async () => {
    // warm up, then the baseline without flood
    await legitReservation(relay.addr)
    const baselineConnections = await metric(relay.metricsPort, /^pos_relay_connections_active (\d+)/m)
    const rssBefore = await rssMiB(relay.proc.child.pid!)
    const quiet: number[] = []
    for (let i = 0; i < 15; i++) {
      const r = await legitReservation(relay.addr)
      assert.equal(r.status, 100)
      quiet.push(r.ms)
    }

    const sockets = new Set<Socket>()
    const open = (host: string, port: number, localAddress: string): Socket => {
      const s = connect({ host, port, localAddress })
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => { sockets.delete(s) })
      return s
    }
    // half-open: idle TCP connections that never start Noise, each from its
    // own address, more than the handshake queue holds. They never time out
    // during the test (HANDSHAKE_TIMEOUT_S): the relay must evict the oldest
    // to let anyone else in (upstream's cap refuses the newest instead: a
    // legitimate peer would be locked out for the whole timeout)
    const halfOpen: Array<Promise<void>> = []
    for (let i = 0; i < HALF_OPEN; i++) {
      const s = open('127.0.0.1', relay.port, ip(20, i + 1))
      halfOpen.push(new Promise<void>((resolve) => { s.once('connect', () => { resolve() }); s.once('close', () => { resolve() }) }))
    }
    await Promise.all(halfOpen)
    await waitFor(async () => await metric(relay.metricsPort, /^pos_relay_denials_total\{reason="handshake_evicted"\} (\d+)/m) >= HALF_OPEN - MAX_PENDING,
      { timeoutMs: 20_000, intervalMs: 250, message: `the relay did not evict the oldest of ${HALF_OPEN} idle handshakes beyond its queue of ${MAX_PENDING}` })
    // the queue is full of idle handshakes now: a legitimate peer still gets in and reserves
    for (let i = 0; i < 5; i++) assert.equal((await legitReservation(relay.addr)).status, 100, 'a legitimate reservation failed with the handshake queue full')

    const stopAt = Date.now() + FLOOD_MS
    // slowloris: a header byte every 500 ms to the metrics port and the discovery API
    const slow: Socket[] = []
    for (let i = 0; i < SLOW_HTTP; i++) {
      const port = i % 2 === 0 ? relay.metricsPort : discovery.port
      const s = open('127.0.0.1', port, ip(30, i + 1))
      s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ')
      slow.push(s)
    }
    const drip = setInterval(() => { for (const s of slow) if (!s.destroyed) s.write('a') }, 500)
    // connect flood: open and drop at once from 5 addresses: well over 100/s each
    const connectFlood = (async () => {
      let n = 0
      while (n < CONNECT_ATTEMPTS && Date.now() < stopAt) {
        for (let j = 0; j < 40 && n < CONNECT_ATTEMPTS; j++, n++) {
          const s = open('127.0.0.1', relay.port, ip(10, (n % 5) + 1))
          s.on('connect', () => { s.destroy() })
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return n
    })()

    const flooded: number[] = []
    let attempts: number
    try {
      while (Date.now() < stopAt) {
        const r = await legitReservation(relay.addr)
        assert.equal(r.status, 100, 'a legitimate reservation failed under flood')
        flooded.push(r.ms)
        // a legitimate peer stays well under the per-IP limit (100/s here)
        await new Promise((resolve) => setTimeout(resolve, 40))
      }
      // the metrics endpoint and the discovery API answer while slow clients hold sockets
      assert.equal((await fetch(`http://127.0.0.1:${relay.metricsPort}/healthz`)).status, 200)
      assert.equal((await fetch(`http://127.0.0.1:${discovery.port}/healthz`)).status, 200)
    } finally {
      attempts = await connectFlood
      clearInterval(drip)
      for (const s of sockets) s.destroy()
    }

    const denials = await metric(relay.metricsPort, /^pos_relay_denials_total\{reason="ip_rate"\} (\d+)/m)
    const evicted = await metric(relay.metricsPort, /^pos_relay_denials_total\{reason="handshake_evicted"\} (\d+)/m)
    assert.ok(denials > 0, 'the connect flood was not rate limited')
    assert.ok(evicted >= HALF_OPEN - MAX_PENDING, `${evicted} handshakes evicted`)
    // sampled logging: a handful of lines, not one per refused connection
    const deniedLines = relay.proc.stderr.filter((l) => l.includes('"event":"denied"')).length
    assert.ok(deniedLines <= 10, `${deniedLines} denial log lines for ${denials} denials`)

    await waitFor(async () => await metric(relay.metricsPort, /^pos_relay_connections_active (\d+)/m) <= baselineConnections,
      { timeoutMs: 15_000, intervalMs: 250, message: 'connections did not return to baseline after the flood' })
    const rssAfter = await rssMiB(relay.proc.child.pid!)
    process.stdout.write(`# reservation ms without flood p50 ${percentile(quiet, 50).toFixed(1)} p99 ${percentile(quiet, 99).toFixed(1)} (n=${quiet.length}); ` +
      `under flood p50 ${percentile(flooded, 50).toFixed(1)} p99 ${percentile(flooded, 99).toFixed(1)} (n=${flooded.length}); ` +
      `${attempts} connect attempts, ${HALF_OPEN} half-open, ${SLOW_HTTP} slow HTTP; ip_rate denials ${denials}, handshakes evicted ${evicted}; relay RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MiB\n`)
    assert.ok(flooded.length >= 5)
  })
})
