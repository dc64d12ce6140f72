/**
 * Entry point of one worker of `pos-relay run --workers N` (forked by
 * cluster.ts): a full RelayServer with the relay's key, its TCP listener
 * shared through the primary (node:cluster), and a WorkerLink to the others.
 */
import { AggregatorRegistry } from 'prom-client'
import { createLogger } from '@pos-relay/shared'
import { parseConfig } from '../config.js'
import { RelayMetrics } from '../metrics.js'
import { RelayServer } from '../relay.js'
import { WorkerLink, type ToPrimary, type ToWorker } from './worker-link.js'

// a send on a closed channel would emit 'error' (an uncaught exception): the link fails closed instead (remote-slots.ts)
const send = (m: ToPrimary): void => { if (process.connected) process.send?.(m) }

process.on('message', (m: ToWorker) => {
  if (m?.pr !== 'init') return
  void start(m).catch((err: Error) => {
    process.stderr.write(`worker failed to start: ${err.stack ?? err.message}\n`)
    process.exit(1)
  })
})

async function start (init: Extract<ToWorker, { pr: 'init' }>): Promise<void> {
  const logger = createLogger({ name: 'relay', level: init.logLevel }).child({ worker: init.index })
  const config = parseConfig(init.config)
  const metrics = new RelayMetrics()
  // the primary's AggregatorRegistry asks every worker for this registry's metrics over IPC
  AggregatorRegistry.setRegistries([metrics.registry])
  // prom-client answers those requests only once an AggregatorRegistry was made in the worker (its constructor adds the IPC listener)
  void new AggregatorRegistry()
  const link = new WorkerLink({ index: init.index, socketDir: init.socketDir, logger, metrics, send, connected: () => process.connected })
  process.on('message', (m: ToWorker) => { link.onMessage(m) })
  const relay = new RelayServer({ config, logger, metrics, remote: link })
  let stopping = false
  const stopWith = (how: () => Promise<void>): void => {
    if (stopping) return
    stopping = true
    // a drain lets the circuits other workers admitted through this one run
    // (relay.drain waits for them too); the link closes once the relay stopped
    how().finally(() => { link.close() }).catch((err: Error) => { logger.error({ event: 'worker_stop_failed', err: err.message }, 'worker stop failed') }).finally(() => process.exit(0))
  }
  process.on('message', (m: ToWorker) => {
    if (m?.pr === 'drain') stopWith(async () => { await relay.drain() })
    // a stop during a drain (second signal) ends the drain's wait at once
    if (m?.pr === 'stop') { if (stopping) relay.hopHooks.abortCircuits(new Error('relay stopping')); else stopWith(async () => { await relay.stop() }) }
  })
  // the primary handles signals; a worker only stops when told (or when the primary goes)
  process.on('SIGTERM', () => {})
  process.on('SIGINT', () => {})
  process.on('disconnect', () => {
    logger.error({ event: 'primary_disconnected' }, 'the IPC channel to the primary closed: refusing new reservations and circuits, stopping')
    link.slots.disconnected()
    stopWith(async () => { await relay.stop() })
  })
  await relay.start()
  await link.serve(relay.hopHooks)
  send({ pr: 'ready', peerId: relay.peerId, addresses: relay.addresses })
}
