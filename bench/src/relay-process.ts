/**
 * OUR relay (@pos-relay/relay RelayServer, default limits) in its own
 * process, on 127.0.0.1 with a random port, no discovery registration.
 * Prints one JSON line: {"ready":true,"pid":..,"addrs":[..],"metrics":"http://.."}.
 * Stops on SIGTERM or when stdin closes.
 */
import { RelayServer, newConfig, parseConfig } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { serve } from './lib/rpc-child.ts'

const base = await newConfig({ p2p_secret: 'bench', port: 0 })
const config = parseConfig({ ...base, host: '127.0.0.1', metrics_host: '127.0.0.1', metrics_port: 0 })
const relay = new RelayServer({ config, logger: createLogger({ name: 'relay', level: process.env.BENCH_RELAY_LOG ?? 'warn' }) })
await relay.start()

serve({
  kind: 'pos-relay',
  peerId: relay.peerId,
  addrs: relay.addresses,
  metrics: `http://${relay.metricsAddress!.host}:${relay.metricsAddress!.port}/metrics`
}, {
  async relayedBytes () {
    const text = await relay.metrics.registry.metrics()
    let total = 0
    for (const m of text.matchAll(/^pos_relay_relayed_bytes_total\{[^}]*\} (\d+(?:\.\d+)?(?:e\+\d+)?)$/gm)) total += Number(m[1])
    return total
  }
}, async () => { await relay.stop() })
