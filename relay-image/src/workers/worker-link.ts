import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { Counter } from 'prom-client'
import { HopStatus, type HopStatusCode } from '../hop-status.js'
import { spliceStreams, type Splice } from '../splice.js'
import { readLine, socketStream } from './socket-stream.js'
import type { Destination, HopHooks, RemoteHop } from '../hop-hooks.js'
import type { DataLimit } from '../hop-admission.js'
import type { RelayMetrics } from '../metrics.js'
import type { Logger } from '@pos-relay/shared'
import type { PeerId } from '@libp2p/interface'
import type { CircuitSlotLimits, SlotRefusal } from '../circuit-slots.js'
import { RemoteSlots } from './remote-slots.js'

/** Messages between the primary and its workers (cluster IPC); `pr` tells them from prom-client's own. */
export type ToPrimary =
  | { pr: 'ready', peerId: string, addresses: string[] }
  | { pr: 'reserved', peer: string }
  | { pr: 'released', peer: string }
  | { pr: 'where', id: number, peer: string }
  // relay-wide counts (workers/slot-table.ts): a slot asked, answered by a SlotAnswer; one given back
  | { pr: 'slot', id: number, kind: 'reservation', peer: string, max: number }
  | { pr: 'slot', id: number, kind: 'circuit', peer: string, ip?: string, limits: CircuitSlotLimits }
  | { pr: 'unslot', kind: 'reservation', peer: string }
  | { pr: 'unslot', kind: 'circuit', id: number }
export type SlotAnswer = { pr: 'slot', id: number, ok: true } | { pr: 'slot', id: number, ok: false, reason: SlotRefusal | 'reservation_limit' }
export type ToWorker =
  | SlotAnswer
  | { pr: 'init', index: number, socketDir: string, config: unknown, logLevel: string }
  | { pr: 'where', id: number, worker: number | null }
  | { pr: 'drain' }
  | { pr: 'stop' }

/** The unix socket a worker accepts other workers' circuits on, in the primary's private (0700) directory. */
export function workerSocketPath (socketDir: string, index: number): string {
  return join(socketDir, `w${index}.sock`)
}

/** How long a worker waits for another to answer a circuit's header (it opens a STOP stream meanwhile). */
const ANSWER_TIMEOUT_MS = 15_000

/** What one worker sends another to open a circuit's destination end: peers, and the limit the admitting worker applies. */
interface CircuitHeader { dst: string, src: string, data?: string }
type CircuitAnswer = { ok: true } | { ok: false, status: HopStatusCode, reason: string }

/**
 * A worker's side of a relay run as several processes (`--workers N`):
 * tells the primary which reservations it holds, asks it where a
 * destination's reservation lives, and carries circuits between workers
 * over unix sockets. The worker that admitted a CONNECT keeps the circuit's
 * limits and accounting (its splice); the worker holding the reservation
 * only opens the STOP stream and splices it to the socket, bytes only.
 */
export class WorkerLink implements RemoteHop {
  private readonly waiting = new Map<number, (worker: number | null) => void>()
  private nextId = 0
  private server?: Server
  /** circuits other workers admitted, running through this one: their destination peer */
  private readonly remoteCircuits = new Map<Splice, string>()
  private readonly idleWaiters = new Set<() => void>()
  private readonly crossWorker: Counter<'side'>
  /** max_reservations and the circuit limits, counted by the primary for all workers */
  readonly slots: RemoteSlots

  constructor (private readonly opts: { index: number, socketDir: string, logger: Logger, metrics: RelayMetrics, send: (m: ToPrimary) => void, connected: () => boolean }) {
    this.slots = new RemoteSlots({ send: opts.send, connected: opts.connected, logger: opts.logger })
    this.crossWorker = new Counter({
      name: 'pos_relay_cross_worker_circuits_total',
      help: 'Circuits between two workers (--workers N), by side: dialer (this worker admitted the CONNECT) or listener (this worker held the reservation)',
      labelNames: ['side'],
      registers: [opts.metrics.registry]
    })
  }

  /** a primary's message for this link (answers to `where` and `slot`) */
  onMessage (m: ToWorker): void {
    if (m.pr === 'slot') { this.slots.onAnswer(m); return }
    if (m.pr !== 'where') return
    const resolve = this.waiting.get(m.id)
    this.waiting.delete(m.id)
    resolve?.(m.worker)
  }

  reserved (peer: PeerId): void { this.opts.send({ pr: 'reserved', peer: peer.toString() }) }
  released (peer: PeerId): void { this.opts.send({ pr: 'released', peer: peer.toString() }) }

  private async where (peer: PeerId): Promise<number | null> {
    const id = this.nextId++
    const answer = new Promise<number | null>((resolve) => { this.waiting.set(id, resolve) })
    this.opts.send({ pr: 'where', id, peer: peer.toString() })
    return await answer
  }

  async connect (dst: PeerId, src: PeerId, limit: DataLimit, options: any): Promise<Destination> {
    const worker = await this.where(dst)
    if (worker == null || worker === this.opts.index) return { status: HopStatus.NO_RESERVATION, reason: 'no_reservation' }
    const path = workerSocketPath(this.opts.socketDir, worker)
    const socket = connect({ path, allowHalfOpen: true })
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(ANSWER_TIMEOUT_MS), ...(options?.signal != null ? [options.signal as AbortSignal] : [])])
      await once(socket, 'connect', { signal })
      const header: CircuitHeader = { dst: dst.toString(), src: src.toString(), ...(limit != null ? { data: limit.data.toString() } : {}) }
      socket.write(JSON.stringify(header) + '\n')
      const answer = await readLine(socket, signal) as CircuitAnswer
      if (!answer.ok) { socket.destroy(); return { status: answer.status, reason: answer.reason } }
      this.crossWorker.inc({ side: 'dialer' })
      this.opts.logger.debug({ event: 'cross_worker_circuit', side: 'dialer', other_worker: worker }, 'circuit to a reservation on another worker')
      return { stream: socketStream(socket, 'outbound') }
    } catch (err: any) {
      socket.destroy()
      this.opts.logger.warn({ event: 'cross_worker_connect_failed', other_worker: worker, err: err.message }, 'could not reach the worker holding the reservation')
      return { status: HopStatus.CONNECTION_FAILED, reason: 'connection_failed' }
    }
  }

  /** Accepts other workers' circuits for reservations held here. */
  async serve (hooks: Pick<HopHooks, 'openDestination'>): Promise<void> {
    const path = workerSocketPath(this.opts.socketDir, this.opts.index)
    this.server = createServer({ allowHalfOpen: true }, (socket) => { void this.accept(socket, path, hooks) })
    this.server.listen(path)
    await once(this.server, 'listening')
  }

  private async accept (socket: Socket, path: string, hooks: Pick<HopHooks, 'openDestination'>): Promise<void> {
    socket.on('error', () => {})
    try {
      const signal = AbortSignal.timeout(ANSWER_TIMEOUT_MS)
      const header = await readLine(socket, signal) as CircuitHeader
      const limit: DataLimit = header.data != null ? { data: BigInt(header.data) } : undefined
      const dst = peerIdFromString(header.dst)
      const destination = await hooks.openDestination(dst, peerIdFromString(header.src), limit, { signal })
      if (!('stream' in destination)) {
        socket.end(JSON.stringify({ ok: false, status: destination.status, reason: destination.reason } satisfies CircuitAnswer) + '\n')
        return
      }
      socket.write(JSON.stringify({ ok: true } satisfies CircuitAnswer) + '\n')
      this.crossWorker.inc({ side: 'listener' })
      const { stream, reservation } = destination
      // limits, metering and byte counts are the admitting worker's: none here
      const splice: Splice = spliceStreams(socketStream(socket, 'inbound'), stream, {
        dataLimit: 0,
        durationMs: 0,
        onBytesToDestination: () => {},
        onBytesToSource: () => {},
        onEnd: () => {
          this.remoteCircuits.delete(splice)
          if (this.remoteCircuits.size === 0) for (const wake of [...this.idleWaiters]) wake()
          reservation?.signal.removeEventListener('abort', onReservationEnd)
        }
      })
      const onReservationEnd = (): void => { splice.abort(new Error('reservation ended')) }
      reservation?.signal.addEventListener('abort', onReservationEnd, { once: true })
      this.remoteCircuits.set(splice, header.dst)
    } catch (err: any) {
      socket.destroy()
      this.opts.logger.debug({ event: 'cross_worker_accept_failed', err: err.message }, 'a circuit from another worker failed')
    }
  }

  carries (peer: string): boolean {
    for (const dst of this.remoteCircuits.values()) if (dst === peer) return true
    return false
  }

  async waitIdle (signal: AbortSignal): Promise<void> {
    if (this.remoteCircuits.size === 0 || signal.aborted) return
    await new Promise<void>((resolve) => {
      const done = (): void => { this.idleWaiters.delete(done); signal.removeEventListener('abort', done); resolve() }
      this.idleWaiters.add(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /** ends the circuits other workers opened through this one, and stops accepting them */
  close (): void {
    for (const c of [...this.remoteCircuits.keys()]) c.abort(new Error('worker stopping'))
    this.server?.close()
  }
}
