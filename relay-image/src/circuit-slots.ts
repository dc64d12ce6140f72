/** The concurrent-circuit limits a slot is checked against; 0 = unlimited. */
export interface CircuitSlotLimits {
  max_circuits: number
  peer_max_circuits: number
  ip_max_circuits: number
}

/** `primary_unreachable`: with `--workers N`, the primary that counts the slots cannot be asked (fail closed) */
export type SlotRefusal = 'circuit_limit' | 'peer_circuit_limit' | 'ip_circuit_limit' | 'primary_unreachable'

export type SlotResult = { ok: true, release: () => void } | { ok: false, reason: SlotRefusal }

/**
 * Counts circuits relay-wide, per source peer and per source IP. A CONNECT
 * takes its slot in the same synchronous step that checks the limits:
 * the circuit is set up over several awaits (rate limits, the STOP to the
 * destination), and a count that only grew once the circuit was open let
 * concurrent CONNECTs all pass the check (8 at once with max_circuits 1
 * opened 5 circuits). The slot is held from the check until `release`,
 * which the caller calls on every failure path and when the circuit ends.
 */
export class CircuitSlots {
  private total = 0
  private readonly perPeer = new Map<string, number>()
  private readonly perIp = new Map<string, number>()

  constructor (private readonly limits: CircuitSlotLimits) {}

  /** SlotLedger's circuit slot, in process: synchronous (no await between the check and the count) */
  takeCircuit (peer: string, ip: string | undefined): SlotResult {
    return this.take(peer, ip)
  }

  /** slots taken: circuits open plus circuits being set up */
  get size (): number {
    return this.total
  }

  /**
   * `ip` undefined: a source without an IP address (not counted per IP).
   * `limits`: the ones in effect for this request (the primary of `--workers N`
   * counts for all workers, each sending the limits it reads at its decision).
   */
  take (peer: string, ip: string | undefined, limits: CircuitSlotLimits = this.limits): SlotResult {
    const { max_circuits: max, peer_max_circuits: perPeer, ip_max_circuits: perIp } = limits
    if (max > 0 && this.total >= max) return { ok: false, reason: 'circuit_limit' }
    if (perPeer > 0 && (this.perPeer.get(peer) ?? 0) >= perPeer) return { ok: false, reason: 'peer_circuit_limit' }
    if (ip != null && perIp > 0 && (this.perIp.get(ip) ?? 0) >= perIp) return { ok: false, reason: 'ip_circuit_limit' }
    this.total++
    increment(this.perPeer, peer)
    if (ip != null) increment(this.perIp, ip)
    return {
      ok: true,
      release: releaseOnce(() => {
        this.total--
        decrement(this.perPeer, peer)
        if (ip != null) decrement(this.perIp, ip)
      })
    }
  }
}

/** `release` that runs once: failure paths and the circuit's end may both release a slot */
export function releaseOnce (release: () => void): () => void {
  let released = false
  return () => {
    if (released) return
    released = true
    release()
  }
}

function increment (counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

function decrement (counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1
  if (n <= 0) counts.delete(key)
  else counts.set(key, n)
}
