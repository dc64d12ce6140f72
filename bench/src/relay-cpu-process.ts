/**
 * Our relay (@pos-relay/relay RelayServer) for the relay CPU A/B
 * (relay-cpu.ts): production defaults, on 127.0.0.1, with the data-path
 * levers named in BENCH_LEVERS (comma-separated: writev, tickWrites,
 * noiseBatch, noiseDecrypt, and yamux=<max frame bytes>). No levers = the
 * unchanged relay: upstream's data path, so `tickWrites: false` over the
 * relay's default (tickWrites on since this A/B, relay-image/src/data-path.ts). The per-peer and per-IP rate limits are off (every
 * client is 127.0.0.1). SIGUSR2 starts V8's sampling profiler (through
 * node:inspector, so a profile covers one warm transfer, not the start-up);
 * the next SIGUSR2 writes it to BENCH_PROFILE_DIR/<n>.cpuprofile and prints
 * {"profile":<file>}. Stops on SIGINT/SIGTERM. Prints one JSON line: {"ready":true,"pid":..,"addrs":[..]}.
 */
import { RelayServer, newConfig, parseConfig } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { DATAPATH_LEVERS, type DataPathLevers } from '@pos-relay/upstream-patches/noise-tcp-datapath'
import { Session } from 'node:inspector/promises'
import { writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const levers: DataPathLevers & { yamuxMaxMessageBytes?: number } = { tickWrites: false }
for (const name of (process.env.BENCH_LEVERS ?? '').split(',').filter((s) => s !== '')) {
  const yamux = /^yamux=(\d+)$/.exec(name)
  const tick = /^tickWrites=(\d+)$/.exec(name)
  if (yamux != null) levers.yamuxMaxMessageBytes = Number(yamux[1])
  else if (tick != null) { levers.tickWrites = true; levers.tickWritesHighWaterBytes = Number(tick[1]) } else if ((DATAPATH_LEVERS as readonly string[]).includes(name)) levers[name as (typeof DATAPATH_LEVERS)[number]] = true
  else throw new Error(`unknown lever ${name}`)
}

const base = await newConfig({ p2p_secret: 'bench', port: 0 })
const config = parseConfig({
  ...base,
  host: '127.0.0.1',
  metrics_host: '127.0.0.1',
  metrics_port: 0,
  drain_seconds: 0,
  limits: { ...base.limits, ip_max_connections: 0 },
  rate_limits: { ...base.rate_limits, ip_connections_per_second: 1_000_000, peer_reservations_per_minute: 0, peer_circuits_per_minute: 0 }
})
const relay = new RelayServer({ config, logger: createLogger({ name: 'relay', level: 'warn' }), dataPath: levers })
await relay.start()

const session = new Session()
session.connect()
let profiling = false
let profiles = 0
process.on('SIGUSR2', () => {
  void (async () => {
    if (!profiling) {
      profiling = true
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval: 500 })
      await session.post('Profiler.start')
      process.stdout.write(JSON.stringify({ profiling: true }) + '\n')
      return
    }
    profiling = false
    const { profile } = await session.post('Profiler.stop')
    const file = join(process.env.BENCH_PROFILE_DIR ?? tmpdir(), `${++profiles}.cpuprofile`)
    await writeFile(file, JSON.stringify(profile))
    process.stdout.write(JSON.stringify({ profile: file }) + '\n')
  })()
})
const stop = (): void => {
  setTimeout(() => process.exit(0), 5000).unref()
  relay.stop().finally(() => process.exit(0))
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, levers, peerId: relay.peerId, addrs: relay.addresses }) + '\n')
