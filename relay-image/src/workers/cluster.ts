import cluster, { type Worker } from 'node:cluster'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AggregatorRegistry } from 'prom-client'
import { HttpServer, send, type Logger } from '@pos-relay/shared'
import type { RelayConfig } from '../config.js'
import { SlotTable } from './slot-table.js'
import type { ToPrimary, ToWorker } from './worker-link.js'

export interface RelayClusterOptions {
  config: RelayConfig
  /** worker processes, at least 2 (1 is the plain single-process RelayServer) */
  workers: number
  logger: Logger
  logLevel?: string
}

/**
 * `pos-relay run --workers N`: this (primary) process forks N workers, each a
 * full RelayServer with the same key, so the same peer id and addresses.
 *
 * TCP: the workers' listeners share the port through node:cluster (the
 * primary accepts and hands connections out round-robin), not SO_REUSEPORT:
 * @libp2p/tcp builds its own listen options (no `reusePort`), cluster spreads
 * connections evenly where the kernel's reuse-port hash can pile them on one
 * worker, and with port 0 every worker gets the same port.
 * QUIC (@chainsafe/libp2p-quic: a native UDP socket, no reuse-port): worker 0
 * only; its QUIC connections and circuits stay on that worker.
 * Discovery registration: worker 0 only (one entry per relay, as before).
 *
 * The primary keeps which worker holds each peer's reservation (workers
 * report over IPC) so that a CONNECT on another worker reaches it (see
 * worker-link.ts), and serves /metrics for all workers (prom-client's
 * AggregatorRegistry), /healthz and /readyz on the configured metrics port.
 */
export class RelayCluster {
  private readonly reservations = new Map<string, number>()
  /** max_reservations and the circuit limits across workers */
  private readonly slots = new SlotTable()
  private readonly workers: Array<Worker | undefined> = []
  private readonly ready = new Set<number>()
  private readonly http = new HttpServer()
  private readonly aggregator = new AggregatorRegistry()
  private socketDir = ''
  private stopping = false
  private allReady?: () => void
  peerId = ''
  addresses: string[] = []
  metricsAddress?: { host: string, port: number }

  constructor (private readonly opts: RelayClusterOptions) {
    if (!cluster.isPrimary) throw new Error('RelayCluster runs in the primary process')
    if (opts.workers < 2) throw new Error('--workers: at least 2 for a cluster')
  }

  /** Starts the workers; resolves once every one listens. */
  async start (): Promise<void> {
    const { config, logger } = this.opts
    // mkdtemp creates the directory with mode 0700: only this user reaches the workers' sockets
    this.socketDir = await mkdtemp(join(tmpdir(), 'pos-relay-workers-'))
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), silent: false })
    const started = new Promise<void>((resolve) => { this.allReady = resolve })
    for (let i = 0; i < this.opts.workers; i++) this.fork(i)
    this.http
      .get('/metrics', async (_req, res) => {
        send(res, 200, await this.aggregator.clusterMetrics(), this.aggregator.contentType)
      })
      .get('/healthz', (_req, res) => { send(res, 200, { status: 'ok' }) })
      .get('/readyz', (_req, res) => {
        const ok = !this.stopping && this.ready.size === this.opts.workers
        send(res, ok ? 200 : 503, { status: ok ? 'ready' : this.stopping ? 'draining' : 'starting', workers_ready: this.ready.size, workers: this.opts.workers })
      })
    const addr = await this.http.listen(config.metrics_port, config.metrics_host)
    this.metricsAddress = { host: addr.address, port: addr.port }
    await started
    logger.info({ event: 'relay_cluster_started', workers: this.opts.workers, peer_id: this.peerId, announce: this.addresses, metrics: `http://${config.metrics_host}:${addr.port}/metrics` }, 'relay workers listening')
  }

  private fork (index: number): void {
    const { config, logger } = this.opts
    const worker = cluster.fork({ POS_RELAY_WORKER: String(index) })
    this.workers[index] = worker
    const workerConfig: RelayConfig = {
      ...config,
      // QUIC and registration on worker 0 only; a worker's own HTTP port is
      // not the relay's (the primary serves /metrics for all)
      quic: index === 0 ? config.quic : false,
      ...(index === 0 ? {} : { api_url: undefined }),
      metrics_host: '127.0.0.1',
      metrics_port: 0
    }
    worker.on('online', () => {
      worker.send({ pr: 'init', index, socketDir: this.socketDir, config: workerConfig, logLevel: this.opts.logLevel ?? 'info' } satisfies ToWorker)
    })
    worker.on('message', (m: ToPrimary) => { this.onMessage(index, worker, m) })
    worker.on('exit', (code, signal) => {
      this.ready.delete(index)
      for (const [peer, w] of this.reservations) if (w === index) this.reservations.delete(peer)
      this.slots.dropWorker(index)
      if (this.stopping) return
      // its peers lost their connections (and reservations) with it; they reconnect to the others or to the new one
      logger.error({ event: 'worker_exited', worker: index, code, signal }, 'a relay worker exited: starting another')
      this.fork(index)
    })
  }

  private onMessage (index: number, worker: Worker, m: ToPrimary): void {
    switch (m?.pr) {
      case 'reserved': this.reservations.set(m.peer, index); this.slots.holdReservation(index, m.peer); break
      case 'released':
        if (this.reservations.get(m.peer) === index) this.reservations.delete(m.peer)
        this.slots.releaseReservation(index, m.peer)
        break
      case 'slot': {
        const answer = m.kind === 'reservation'
          ? (this.slots.takeReservation(index, m.peer, m.max) ? { ok: true as const } : { ok: false as const, reason: 'reservation_limit' as const })
          : this.slots.takeCircuit(index, m.id, m.peer, m.ip, m.limits)
        // a worker gone meanwhile: its slots go with it (exit -> dropWorker)
        if (worker.isConnected()) worker.send({ pr: 'slot', id: m.id, ...answer } satisfies ToWorker)
        break
      }
      case 'unslot':
        if (m.kind === 'reservation') this.slots.releaseReservation(index, m.peer)
        else this.slots.releaseCircuit(index, m.id)
        break
      case 'where': worker.send({ pr: 'where', id: m.id, worker: this.reservations.get(m.peer) ?? null } satisfies ToWorker); break
      case 'ready':
        if (index === 0) { this.peerId = m.peerId; this.addresses = m.addresses }
        this.ready.add(index)
        if (this.ready.size === this.opts.workers) this.allReady?.()
        break
    }
  }

  /** which worker holds `peer`'s reservation (tests, diagnostics) */
  reservationWorker (peer: string): number | undefined {
    return this.reservations.get(peer)
  }

  /** relay-wide reservation slots and circuit slots the primary counts (tests, diagnostics) */
  slotCounts (): { reservations: number, circuits: number } {
    return { reservations: this.slots.reservationCount, circuits: this.slots.circuitCount }
  }

  /** Graceful (SIGTERM): every worker drains (relay.drain) and exits. */
  async drain (): Promise<void> { await this.stopWorkers('drain') }

  async stop (): Promise<void> { await this.stopWorkers('stop') }

  private stopped?: Promise<void>
  private async stopWorkers (how: 'drain' | 'stop'): Promise<void> {
    // a stop during a drain tells the workers to stop now, then waits for the same exits
    if (this.stopped != null) {
      if (how === 'stop') for (const w of this.workers) if (w != null && !w.isDead()) { try { w.send({ pr: 'stop' } satisfies ToWorker) } catch {} }
      await this.stopped
      return
    }
    this.stopped = this.stopAll(how)
    await this.stopped
  }

  private async stopAll (how: 'drain' | 'stop'): Promise<void> {
    this.stopping = true
    const exits = this.workers.filter((w): w is Worker => w != null && !w.isDead()).map(async (w) => {
      const exited = new Promise<void>((resolve) => { w.once('exit', () => { resolve() }) })
      try { w.send({ pr: how } satisfies ToWorker) } catch { w.kill() }
      await exited
    })
    await Promise.all(exits)
    await this.http.close()
    await rm(this.socketDir, { recursive: true, force: true })
    this.opts.logger.info({ event: 'relay_cluster_stopped' }, 'relay workers stopped')
  }
}
