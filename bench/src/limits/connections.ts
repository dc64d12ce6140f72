/** Part 1b of the limits bench: sequential new connections (TCP + Noise + Yamux) against the relays, block by block. */
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import type { RedisServer } from '@pos-relay/testing'
import { createLibp2p } from 'libp2p'
import type { CliRelay } from '../lib/cli.ts'
import { readCpuSeconds } from '../lib/proc.ts'
import { callsDelta, commandCalls } from '../lib/redis-admin.ts'
import { summarize } from '../lib/stats.ts'
import { config, log } from './config.ts'
import { countsDelta, denialCounts, relayArgsForDoc } from './relays.ts'
import type { ConnResult } from './results.ts'

const ipOf = (block: number, i: number): string => `127.${block + Math.floor(i / (254 * 256))}.${Math.floor(i / 254) % 256}.${1 + (i % 254)}`

/** Part 1b: sequential new connections against both relays, block by block. */
export async function measureConnections (relays: Array<{ label: string, relay: CliRelay }>, redis: RedisServer): Promise<ConnResult[]> {
  const dialOpts: { localAddress: string } = { localAddress: ipOf(50, 0) }
  // dialOpts is spread into net.connect() options on every dial: rotating the
  // source address keeps libp2p's per-host inbound threshold (10/s on the
  // limits-off relay) and the per-IP limits out of the measurement
  const dialer = await createLibp2p({ transports: [tcp({ dialOpts: dialOpts as any })], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  let src = 0
  const one = async (r: CliRelay): Promise<{ dialMs: number, totalMs: number } | undefined> => {
    dialOpts.localAddress = ipOf(50, src++ % config.connSources)
    const t0 = performance.now()
    try {
      const conn = await dialer.dial(multiaddr(r.addr), { signal: AbortSignal.timeout(10_000) })
      const t1 = performance.now()
      await conn.close()
      return { dialMs: t1 - t0, totalMs: performance.now() - t0 }
    } catch {
      await dialer.hangUp(multiaddr(r.addr)).catch(() => {})
      return undefined
    }
  }
  try {
    const state = relays.map(({ label, relay }) => ({ label, relay, dial: [] as number[], total: [] as number[], cpuS: 0, failed: 0, redis: {} as Record<string, number>, denials0: {} as Record<string, number> }))
    for (const s of state) {
      for (let i = 0; i < 30; i++) await one(s.relay) // warm-up
      s.denials0 = await denialCounts(s.relay)
    }
    const blocks = Math.ceil(config.conns / config.connBlock)
    for (let b = 0; b < blocks; b++) {
      const order = b % 2 === 0 ? state : [...state].reverse()
      for (const s of order) {
        const n = Math.min(config.connBlock, config.conns - b * config.connBlock)
        const before = await commandCalls(redis.port)
        const c0 = readCpuSeconds(s.relay.pid)
        for (let i = 0; i < n; i++) {
          const r = await one(s.relay)
          if (r == null) { s.failed++; continue }
          s.dial.push(r.dialMs)
          s.total.push(r.totalMs)
        }
        s.cpuS += readCpuSeconds(s.relay.pid) - c0
        for (const [k, v] of Object.entries(callsDelta(before, await commandCalls(redis.port)))) s.redis[k] = (s.redis[k] ?? 0) + v
      }
    }
    const out: ConnResult[] = []
    for (const s of state) {
      const n = s.dial.length
      const denials = countsDelta(s.denials0, await denialCounts(s.relay))
      const r: ConnResult = {
        label: s.label,
        args: relayArgsForDoc(s.relay),
        n,
        dial: summarize(s.dial),
        total: summarize(s.total),
        connsPerSec: n / (s.total.reduce((a, x) => a + x, 0) / 1000),
        relayCpuMsPerConn: s.cpuS * 1000 / (n + s.failed),
        refusedOrFailed: s.failed,
        denials
      }
      if (s.relay.args.includes('--redis')) r.redisCommandsPerConn = Object.fromEntries(Object.entries(s.redis).map(([k, v]) => [k, v / (n + s.failed)]))
      log(`connections, ${s.label}: dial p50 ${r.dial.p50.toFixed(2)} ms, p99 ${r.dial.p99.toFixed(2)} ms; dial + hang up p50 ${r.total.p50.toFixed(2)} ms; ${r.connsPerSec.toFixed(0)} conn/s; relay CPU ${r.relayCpuMsPerConn.toFixed(2)} ms/conn; failed ${s.failed}` +
        (r.redisCommandsPerConn != null ? `; Redis per conn ${JSON.stringify(r.redisCommandsPerConn)}` : ''))
      out.push(r)
    }
    return out
  } finally {
    await dialer.stop()
  }
}

/** Part 2: relayed throughput through both relays, interleaved. */
