import { releaseOnce, type CircuitSlotLimits, type SlotResult } from '../circuit-slots.js'
import type { ReservationSlotRefusal, SlotLedger } from '../slot-ledger.js'
import type { Logger } from '@pos-relay/shared'
import type { SlotAnswer, ToPrimary } from './worker-link.js'

/**
 * A worker's SlotLedger: the relay-wide counts are the primary's
 * (workers/slot-table.ts), one IPC round trip per RESERVE or CONNECT.
 * Fails closed: with the IPC channel to the primary closed (the primary is
 * gone), new reservations and circuits are refused `primary_unreachable`.
 */
export class RemoteSlots implements SlotLedger {
  private readonly waiting = new Map<number, (answer: SlotAnswer) => void>()
  private nextId = 0

  constructor (private readonly opts: { send: (m: ToPrimary) => void, connected: () => boolean, logger: Logger }) {}

  /** the primary's answer to a slot request */
  onAnswer (m: SlotAnswer): void {
    const resolve = this.waiting.get(m.id)
    this.waiting.delete(m.id)
    resolve?.(m)
  }

  /** the channel to the primary closed: every request waiting for an answer is refused */
  disconnected (): void {
    for (const [id, resolve] of [...this.waiting]) resolve({ pr: 'slot', id, ok: false, reason: 'primary_unreachable' })
    this.waiting.clear()
  }

  private async ask (request: (id: number) => ToPrimary): Promise<SlotAnswer> {
    const id = this.nextId++
    if (!this.opts.connected()) {
      this.opts.logger.error({ event: 'slot_refused_primary_unreachable' }, 'the IPC channel to the primary is closed: refusing new reservations and circuits')
      return { pr: 'slot', id, ok: false, reason: 'primary_unreachable' }
    }
    const answer = new Promise<SlotAnswer>((resolve) => { this.waiting.set(id, resolve) })
    this.opts.send(request(id))
    return await answer
  }

  async takeReservation (peer: string, max: number): Promise<true | ReservationSlotRefusal> {
    const answer = await this.ask((id) => ({ pr: 'slot', id, kind: 'reservation', peer, max }))
    return answer.ok ? true : answer.reason === 'primary_unreachable' ? 'primary_unreachable' : 'reservation_limit'
  }

  releaseReservation (peer: string): void {
    if (this.opts.connected()) this.opts.send({ pr: 'unslot', kind: 'reservation', peer })
  }

  async takeCircuit (peer: string, ip: string | undefined, limits: CircuitSlotLimits): Promise<SlotResult> {
    const { max_circuits: maxCircuits, peer_max_circuits: peerMax, ip_max_circuits: ipMax } = limits
    let id = -1
    const answer = await this.ask((n) => {
      id = n
      return { pr: 'slot', id: n, kind: 'circuit', peer, ...(ip != null ? { ip } : {}), limits: { max_circuits: maxCircuits, peer_max_circuits: peerMax, ip_max_circuits: ipMax } }
    })
    if (!answer.ok) return { ok: false, reason: answer.reason as Extract<SlotResult, { ok: false }>['reason'] }
    return {
      ok: true,
      release: releaseOnce(() => {
        if (this.opts.connected()) this.opts.send({ pr: 'unslot', kind: 'circuit', id })
      })
    }
  }
}
