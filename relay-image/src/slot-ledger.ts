import type { CircuitSlotLimits, SlotResult } from './circuit-slots.js'

/** Why a relay-wide reservation slot was refused: at `max_reservations`, or (workers) the primary cannot be asked. */
export type ReservationSlotRefusal = 'reservation_limit' | 'primary_unreachable'

/**
 * Where the relay-wide counts live: reservations (`max_reservations`) and
 * circuits (`max_circuits`, `peer_max_circuits`, `ip_max_circuits`).
 *
 * One process: in process and synchronous (HopAdmission's default: the
 * circuit slots of CircuitSlots; reservations counted by upstream's store,
 * checked in hop-hooks' reserve), no IPC and no await. `--workers N`: the primary counts
 * for all workers (workers/slot-table.ts), one IPC round trip per RESERVE or
 * CONNECT (workers/remote-slots.ts); the answers are then promises.
 */
export interface SlotLedger {
  /**
   * A relay-wide reservation slot for `peer` below `max`. A peer that holds
   * one already (a refresh, or its reservation on another worker) keeps it:
   * one peer counts once. `true`, or why not.
   */
  takeReservation: (peer: string, max: number) => true | ReservationSlotRefusal | Promise<true | ReservationSlotRefusal>
  /** no reservation was made here after a granted takeReservation (or it ended): frees this holder's slot */
  releaseReservation: (peer: string) => void
  /** a circuit slot (relay-wide, per source peer, per source IP), held until its `release` */
  takeCircuit: (peer: string, ip: string | undefined, limits: CircuitSlotLimits) => SlotResult | Promise<SlotResult>
}
