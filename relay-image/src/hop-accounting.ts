import type { PeerId } from '@libp2p/interface'
import type { UsageDelta } from '@pos-relay/accounts'

/** Where usage is recorded when auth is on (the account policy's meter, see account-policy.ts). */
export interface AccountingMeter {
  meter: (account: string, delta: Partial<UsageDelta>) => void
  /** gives back the account's fleet-wide reservation slot */
  releaseReservation: (account: string, peer: PeerId) => void
}

/** The relay-wide byte counters (pos_relay_relayed_bytes_total, by direction). */
export interface ByteCounters {
  toDestination: { inc: (n: number) => void }
  toSource: { inc: (n: number) => void }
}

export interface HopAccountingOptions {
  bytes: ByteCounters
  /** bytes metered to an account (pos_relay_metered_bytes_total): counted with the meter, so the two agree */
  meteredBytes?: ByteCounters
  /** with auth on; without it only the byte counters count */
  accounts?: AccountingMeter
  now?: () => number
}

/** A circuit as accounting sees it: who pays, billed up to when. */
export interface BilledCircuit {
  account?: string
  lastBilled: number
}

/**
 * Counts what circuits carry and bills accounts for it: bytes each way,
 * circuits opened, reservation-seconds and circuit-seconds (billed at each
 * metering tick and at the end). Decides nothing: admission does.
 */
export class HopAccounting {
  /** reservations made with auth on: who pays for them, billed since when */
  private readonly reservations = new Map<string, { account: string, peer: PeerId, lastBilled: number }>()
  private readonly now: () => number

  constructor (private readonly opts: HopAccountingOptions) {
    this.now = opts.now ?? Date.now
  }

  /** a reservation was made (or refreshed) for `account`; billed from now, once */
  reservationMade (peer: PeerId, account: string): void {
    if (!this.reservations.has(peer.toString())) this.reservations.set(peer.toString(), { account, peer, lastBilled: this.now() })
  }

  /** bills the rest of a peer's reservation and gives back its fleet-wide slot */
  reservationEnded (peer: PeerId): void {
    const billed = this.reservations.get(peer.toString())
    if (billed == null) return
    this.reservations.delete(peer.toString())
    this.opts.accounts?.meter(billed.account, { reservation_seconds: (this.now() - billed.lastBilled) / 1000 })
    this.opts.accounts?.releaseReservation(billed.account, peer)
  }

  /** a circuit opened; `account`: who it is metered to, if anyone */
  circuitOpened (account: string | undefined): BilledCircuit {
    if (account != null) this.opts.accounts?.meter(account, { circuits: 1 })
    return { ...(account != null ? { account } : {}), lastBilled: this.now() }
  }

  /** the counters a circuit's splice reports to (billed to the account, if it has one) */
  circuitBytes (circuit: BilledCircuit): { toDestination: (n: number) => void, toSource: (n: number) => void } {
    const { bytes, accounts, meteredBytes } = this.opts
    const account = circuit.account
    const metered = account != null && accounts != null
    return {
      toDestination: (n) => {
        bytes.toDestination.inc(n)
        if (metered) { accounts.meter(account, { bytes_to_destination: n }); meteredBytes?.toDestination.inc(n) }
      },
      toSource: (n) => {
        bytes.toSource.inc(n)
        if (metered) { accounts.meter(account, { bytes_to_source: n }); meteredBytes?.toSource.inc(n) }
      }
    }
  }

  /** a circuit ended: bills its last seconds */
  circuitEnded (circuit: BilledCircuit): void {
    if (circuit.account != null) this.opts.accounts?.meter(circuit.account, { circuit_seconds: (this.now() - circuit.lastBilled) / 1000 })
  }

  /**
   * The reservation part of a metering tick: reservations gone since the last
   * tick (upstream expires them silently) are billed and released, those
   * `stillValid` turns down are handed to `end`, the others billed up to now.
   */
  tickReservations (isReserved: (peer: PeerId) => boolean, stillValid: (peer: PeerId) => boolean, end: (peer: PeerId) => void): void {
    const now = this.now()
    for (const r of [...this.reservations.values()]) {
      if (!isReserved(r.peer)) { this.reservationEnded(r.peer); continue }
      if (!stillValid(r.peer)) { end(r.peer); continue }
      this.opts.accounts?.meter(r.account, { reservation_seconds: (now - r.lastBilled) / 1000 })
      r.lastBilled = now
    }
  }

  /** The circuit part of a metering tick: bills circuit-seconds up to now; returns the circuits by account. */
  tickCircuits<C extends BilledCircuit> (circuits: Iterable<C>): Map<string, C[]> {
    const now = this.now()
    const byAccount = new Map<string, C[]>()
    for (const c of circuits) {
      if (c.account == null) continue
      this.opts.accounts?.meter(c.account, { circuit_seconds: (now - c.lastBilled) / 1000 })
      c.lastBilled = now
      byAccount.set(c.account, [...(byAccount.get(c.account) ?? []), c])
    }
    return byAccount
  }
}
