import { HopStatus, type HopStatusCode } from './hop-status.js'
import { CircuitSlots } from './circuit-slots.js'
import { ipOf, isRelayed } from './connection-ip.js'
import type { RelayLimits } from './config.js'
import type { SlotLedger } from './slot-ledger.js'
import type { LimitKind } from './rate-limits.js'
import type { Connection, PeerId } from '@libp2p/interface'
import type { Tier } from '@pos-relay/accounts'

/** The data limit a reservation or circuit announces (Circuit Relay v2 `Limit.data`). */
export type DataLimit = { data: bigint } | undefined

/** A request this relay turns down: the status to answer and the reason counted in pos_relay_denials_total. */
export interface Refusal {
  ok: false
  status: HopStatusCode
  reason: string
}

/** Account rules admission consults when auth is on (see account-policy.ts). */
export interface AdmissionAccounts {
  /** account and tier of a peer that presented a valid ticket; undefined: refuse */
  identify: (peer: PeerId) => { account: string, tier: Tier } | undefined
  /** fleet-wide admission of one more reservation for the account (tier.max_reservations) */
  admitReservation: (account: string, peer: PeerId, tier: Tier) => Promise<boolean>
  releaseReservation: (account: string, peer: PeerId) => void
  /** bytes the account may still relay this month; Infinity when unlimited */
  remainingBytes: (account: string, tier: Tier) => Promise<number>
}

export interface HopAdmissionOptions {
  limits: Pick<RelayLimits, 'max_reservations' | 'max_circuits' | 'peer_max_circuits' | 'ip_max_circuits' | 'circuit_data_limit_bytes' | 'circuit_duration_seconds'>
  isDraining: () => boolean
  rateLimiter: { allow: (kind: LimitKind, key: string) => Promise<boolean> }
  /** with auth on: tickets, tiers, fleet reservation counts and quotas */
  accounts?: AdmissionAccounts
  /** the account a peer relays for without auth on (account rate limits only) */
  accountOf?: (peer: PeerId) => string | undefined
  /** whether `peer` holds a reservation here now (its RESERVE is then a refresh) */
  hasReservation: (peer: PeerId) => boolean
  /** circuit buffers are at the relay-wide budget */
  buffersExhausted: () => boolean
  /**
   * `--workers N`: the relay-wide counts kept by the primary (workers/remote-slots.ts).
   * Unset (one process): circuit slots counted here, synchronously; reservations by upstream's store.
   */
  ledger?: SlotLedger
}

export interface ReserveAdmitted {
  ok: true
  /** with auth on: who pays for the reservation */
  who?: { account: string, tier: Tier }
  /** the data limit to announce with the reservation */
  limit: DataLimit
  /** call when the reservation was not made after all: gives back the account's fleet-wide slot */
  release: () => void
}

export interface ConnectAdmitted {
  ok: true
  who?: { account: string, tier: Tier }
  /** the account metered for the circuit and counted in account rate limits */
  account?: string
  /** the circuit's data limit: the tier's or the relay's, never more than the account's quota left */
  limit: DataLimit
  /** the limit is the quota left (reaching it ends the circuit as 'quota') */
  quotaBound: boolean
  durationSeconds: number
  /** frees the circuit slot taken for this CONNECT; call once the circuit ends, or fails to open */
  releaseSlot: () => void
}

/**
 * Decides whether a RESERVE or a CONNECT is admitted, and if not, which
 * status and reason to answer: draining, circuit limits (relay-wide, per
 * peer, per IP), the buffer budget, rate limits, tickets, account
 * reservation counts and quotas. It answers nothing itself and owns no
 * stream: installHopHooks writes the answer.
 */
export class HopAdmission {
  private readonly slots: CircuitSlots
  private readonly ledger: SlotLedger

  /** `opts.limits` is read at each decision: a relay that reloads its limits changes that object in place */
  constructor (private readonly opts: HopAdmissionOptions) {
    this.slots = new CircuitSlots(opts.limits)
    // one process: the reservation count is upstream's store's size, checked in hop-hooks' reserve (synchronous)
    this.ledger = opts.ledger ?? { takeReservation: () => true, releaseReservation: () => {}, takeCircuit: (peer, ip) => this.slots.take(peer, ip) }
  }

  /**
   * The relay's own data limit. Upstream's own default limit announces its
   * duration in ms where the wire wants seconds (UPSTREAM.md): only the data
   * limit is announced, the duration is enforced by the splice.
   */
  private get relayLimit (): DataLimit {
    const bytes = this.opts.limits.circuit_data_limit_bytes
    return bytes > 0 ? { data: BigInt(bytes) } : undefined
  }

  /** circuits open or being set up */
  get circuitSlots (): number {
    return this.slots.size
  }

  /** the data limit of a tier's circuits (the relay's when the tier sets none) */
  dataLimit (tier?: Tier): DataLimit {
    return tier != null && tier.circuit_data_limit_bytes > 0 ? { data: BigInt(tier.circuit_data_limit_bytes) } : this.relayLimit
  }

  async reserve (peer: PeerId): Promise<ReserveAdmitted | Refusal & { result: 'refused' | 'denied' }> {
    const { accounts } = this.opts
    // refused while draining so clients move to another relay
    if (this.opts.isDraining()) return { ok: false, status: HopStatus.RESERVATION_REFUSED, reason: 'draining', result: 'refused' }
    if (!(await this.opts.rateLimiter.allow('peer_reservation', peer.toString()))) {
      return { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'peer_reservation_rate', result: 'refused' }
    }
    if (accounts == null) return await this.reservationSlot(peer, { ok: true, limit: this.relayLimit, release: () => {} })
    const who = accounts.identify(peer)
    if (who == null) return { ok: false, status: HopStatus.PERMISSION_DENIED, reason: 'no_ticket', result: 'denied' }
    // a refresh keeps the slot the reservation already holds
    const refreshing = this.opts.hasReservation(peer)
    if (!refreshing && !(await accounts.admitReservation(who.account, peer, who.tier))) {
      return { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'account_reservations', result: 'refused' }
    }
    return await this.reservationSlot(peer, {
      ok: true,
      who,
      limit: this.dataLimit(who.tier),
      release: () => { if (!refreshing) accounts.releaseReservation(who.account, peer) }
    })
  }

  /**
   * The relay-wide reservation slot, last (as upstream's store checks its cap
   * last in one process): refused as the store refuses, RESERVATION_REFUSED.
   * Synchronous in one process (always granted here: the store's size is checked in hop-hooks' reserve).
   */
  private async reservationSlot (peer: PeerId, admitted: ReserveAdmitted): Promise<ReserveAdmitted | Refusal & { result: 'refused' }> {
    const id = peer.toString()
    const answer = this.ledger.takeReservation(id, this.opts.limits.max_reservations)
    const slot = answer === true ? true : await answer
    if (slot !== true) {
      admitted.release()
      return { ok: false, status: HopStatus.RESERVATION_REFUSED, reason: slot, result: 'refused' }
    }
    if (this.opts.ledger == null) return admitted
    return { ...admitted, release: () => { admitted.release(); this.ledger.releaseReservation(id) } }
  }

  /**
   * Admission of a CONNECT from `connection`'s peer. The circuit slot is taken
   * before the first await (see CircuitSlots), so concurrent CONNECTs cannot
   * all pass one limit; on refusal it is given back here.
   */
  async connect (connection: Connection): Promise<ConnectAdmitted | Refusal> {
    if (isRelayed(connection)) return refusal(HopStatus.PERMISSION_DENIED, 'relayed_source')
    // a circuit would add to buffers already at the relay-wide budget
    if (this.opts.buffersExhausted()) return refusal(HopStatus.RESOURCE_LIMIT_EXCEEDED, 'buffer_budget')
    // one process: taken synchronously (no await between the check and the count); workers: the primary's answer
    const taken = this.ledger.takeCircuit(connection.remotePeer.toString(), ipOf(connection), this.opts.limits)
    const slot = taken instanceof Promise ? await taken : taken
    if (!slot.ok) return refusal(HopStatus.RESOURCE_LIMIT_EXCEEDED, slot.reason)
    let admitted: ConnectAdmitted | Refusal | undefined
    try {
      admitted = await this.connectHoldingSlot(connection.remotePeer, slot.release)
      return admitted
    } finally {
      if (admitted?.ok !== true) slot.release()
    }
  }

  private async connectHoldingSlot (peer: PeerId, releaseSlot: () => void): Promise<ConnectAdmitted | Refusal> {
    const { accounts, limits } = this.opts
    if (!(await this.opts.rateLimiter.allow('peer_circuit', peer.toString()))) return refusal(HopStatus.RESOURCE_LIMIT_EXCEEDED, 'peer_circuit_rate')
    const who = accounts?.identify(peer)
    if (accounts != null && who == null) return refusal(HopStatus.PERMISSION_DENIED, 'no_ticket')
    const account = who?.account ?? this.opts.accountOf?.(peer)
    if (account != null && !(await this.opts.rateLimiter.allow('account_circuit', account))) return refusal(HopStatus.RESOURCE_LIMIT_EXCEEDED, 'account_circuit_rate')
    let limit = this.dataLimit(who?.tier)
    let quotaBound = false
    if (who != null && who.tier.monthly_bytes > 0) {
      const remaining = await accounts!.remainingBytes(who.account, who.tier)
      if (remaining <= 0) return refusal(HopStatus.RESOURCE_LIMIT_EXCEEDED, 'quota')
      if (limit == null || BigInt(Math.floor(remaining)) < limit.data) {
        limit = { data: BigInt(Math.floor(remaining)) }
        quotaBound = true
      }
    }
    const durationSeconds = who != null && who.tier.circuit_duration_seconds > 0 ? who.tier.circuit_duration_seconds : limits.circuit_duration_seconds
    return { ok: true, ...(who != null ? { who } : {}), ...(account != null ? { account } : {}), limit, quotaBound, durationSeconds, releaseSlot }
  }

  /**
   * Whether the account `peer` relays for has used up its monthly quota
   * (possibly on other relays): its open circuits must then end.
   */
  async quotaUsedUp (peer: PeerId, account: string): Promise<boolean> {
    const who = this.opts.accounts?.identify(peer)
    if (who == null || who.tier.monthly_bytes <= 0) return false
    return await this.opts.accounts!.remainingBytes(account, who.tier) <= 0
  }
}

function refusal (status: HopStatusCode, reason: string): Refusal {
  return { ok: false, status, reason }
}
