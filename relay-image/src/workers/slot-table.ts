import { CircuitSlots, type CircuitSlotLimits, type SlotRefusal } from '../circuit-slots.js'

/**
 * The relay-wide counts of `--workers N`, kept by the primary for all
 * workers (they ask over IPC, workers/remote-slots.ts): reservations
 * (`max_reservations`) and circuits (`max_circuits`, `peer_max_circuits`,
 * `ip_max_circuits`). Every check and count happens in one synchronous step
 * of the primary, so concurrent requests from several workers cannot all
 * pass one limit. The limits are the asking worker's, read at its decision
 * (a reloaded limits file applies at once).
 *
 * A reservation slot is a peer's, however many workers hold a reservation of
 * it (a peer with connections on two workers counts once; a refresh keeps
 * its slot); it is freed when no worker holds it any more. A worker that
 * exits frees all its slots (its peers lost their connections with it).
 */
export class SlotTable {
  /** peer -> the workers holding (or about to make) its reservation */
  private readonly reservations = new Map<string, Set<number>>()
  private readonly circuits = new CircuitSlots({ max_circuits: 0, peer_max_circuits: 0, ip_max_circuits: 0 })
  /** worker -> its circuit slots by the id it gave them */
  private readonly circuitsOf = new Map<number, Map<number, () => void>>()

  get reservationCount (): number { return this.reservations.size }
  get circuitCount (): number { return this.circuits.size }

  /** a slot for `peer`'s reservation on `worker`: granted when the peer holds one already or the relay is below `max` */
  takeReservation (worker: number, peer: string, max: number): boolean {
    const holders = this.reservations.get(peer)
    if (holders == null && this.reservations.size >= max) return false
    this.holdReservation(worker, peer)
    return true
  }

  /** `worker` made a reservation for `peer` (counted even past `max`: it was granted, possibly just before a release) */
  holdReservation (worker: number, peer: string): void {
    const holders = this.reservations.get(peer)
    if (holders != null) holders.add(worker)
    else this.reservations.set(peer, new Set([worker]))
  }

  /** `worker` holds no reservation for `peer` (it ended, or was not made) */
  releaseReservation (worker: number, peer: string): void {
    const holders = this.reservations.get(peer)
    if (holders == null) return
    holders.delete(worker)
    if (holders.size === 0) this.reservations.delete(peer)
  }

  takeCircuit (worker: number, id: number, peer: string, ip: string | undefined, limits: CircuitSlotLimits): { ok: true } | { ok: false, reason: SlotRefusal } {
    const slot = this.circuits.take(peer, ip, limits)
    if (!slot.ok) return slot
    let held = this.circuitsOf.get(worker)
    if (held == null) this.circuitsOf.set(worker, held = new Map())
    held.set(id, slot.release)
    return { ok: true }
  }

  releaseCircuit (worker: number, id: number): void {
    const held = this.circuitsOf.get(worker)
    held?.get(id)?.()
    held?.delete(id)
  }

  /** `worker` exited: its reservations and circuits are gone */
  dropWorker (worker: number): void {
    for (const peer of [...this.reservations.keys()]) this.releaseReservation(worker, peer)
    for (const release of this.circuitsOf.get(worker)?.values() ?? []) release()
    this.circuitsOf.delete(worker)
  }
}
