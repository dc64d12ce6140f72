/**
 * One relay failure among many clients (issue 18), on top of the ENG-1672 model (sim.ts): how many
 * discovery requests does it cause, and how are they spread in time? Each client ranks the relays
 * for its own peer id (the SDK's relaysToReserve), polls discovery every `pollMs` at its own phase,
 * and follows the failover rule with the SDK's own timings (FAILOVER_TIMING): a client whose chosen
 * relay fails moves to its next relay at once and schedules one refresh after a uniform
 * 0..refreshSpreadMs delay, at most one per refreshMinGapMs; failed background retries ask nothing.
 * Clients that did not hold the relay notice nothing (dialers do not refresh on a failed relay).
 *
 * Pure and deterministic: the seed fixes the phases and delays. Times in ms, the failure at t = 0.
 */
import { relaysToReserve } from '@pos-relay/client'
import { seededRandom } from '@pos-relay/testing'

export interface FailoverSimOptions {
  /** client peer ids */
  clients: readonly string[]
  /** relay peer ids, all listed before the failure */
  relays: readonly string[]
  relayCount: number
  pollMs: number
  /** the discovery TTL: a SIGKILLed relay stays listed until its last heartbeat (every ttl / 3) is ttl old */
  ttlMs: number
  /** SIGKILL: listed until its TTL runs out; SIGTERM (drain): deregistered at once */
  failure: 'SIGKILL' | 'SIGTERM'
  /** the SDK's numbers */
  refreshSpreadMs: number
  refreshMinGapMs: number
  /** false: every affected client refreshes the instant it notices (no jitter), for comparison */
  jitter: boolean
  seed: number
}

export interface FailoverSimResult {
  clients: number
  /** clients that held a reservation on the failed relay */
  affected: number
  /** discovery requests in the first poll interval after the failure, beyond the regular polls */
  extraRequests: number
  extraPerClient: number
  extraPerAffectedClient: number
  /** the most discovery requests in any one second after the failure, regular polls included, and without the failure */
  peakPerSecond: number
  baselinePeakPerSecond: number
  /** the most requests in any 10 ms after the failure (the instant the peers of a dead relay all ask) */
  peakPer10ms: number
  /** with the rule before issue 18 (retry the lost relay until the next poll): time until an affected client (N = 1) reserved elsewhere, mean and max */
  oldMoveMeanMs: number
  oldMoveMaxMs: number
}

export function simulateFailover (o: FailoverSimOptions): FailoverSimResult {
  const rnd = seededRandom(o.seed)
  const failed = o.relays[0]!
  const horizon = o.pollMs
  const failure: number[] = []
  const regular: number[] = []
  let affected = 0
  let oldMoveSum = 0
  let oldMoveMax = 0
  // when the failed relay leaves the list: SIGKILL: its last heartbeat was up to ttl / 3 ago
  const delistedAt = o.failure === 'SIGTERM' ? 0 : o.ttlMs - rnd() * (o.ttlMs / 3)
  for (const client of o.clients) {
    const phase = rnd() * o.pollMs
    for (let t = phase - o.pollMs; t < horizon; t += o.pollMs) if (t >= 0) regular.push(t)
    const chosen = relaysToReserve(o.relays.map((peer_id) => ({ peer_id })), client, o.relayCount)
    if (!chosen.some((r) => r.peer_id === failed)) continue
    affected++
    // noticed at once: the relay connection closes (SIGKILL: the kernel resets it; SIGTERM: the drain closes it)
    const refreshAt = o.jitter ? rnd() * o.refreshSpreadMs : 0
    failure.push(refreshAt)
    // after that refresh the relay is either still listed (stays unusable, retried without asking
    // discovery) or gone (forgotten): no further failure, so no further refresh within the gap
    // old rule: the client keeps retrying the dead relay until its next poll shows a list without it
    let next = phase
    while (next < delistedAt || next <= 0) next += o.pollMs
    oldMoveSum += next
    oldMoveMax = Math.max(oldMoveMax, next)
  }
  const peak = (times: number[], windowMs: number): number => {
    const sorted = [...times].sort((a, b) => a - b)
    let best = 0
    let lo = 0
    for (let hi = 0; hi < sorted.length; hi++) {
      while (sorted[hi]! - sorted[lo]! >= windowMs) lo++
      best = Math.max(best, hi - lo + 1)
    }
    return best
  }
  const all = [...regular, ...failure]
  return {
    clients: o.clients.length,
    affected,
    extraRequests: failure.length,
    extraPerClient: failure.length / o.clients.length,
    extraPerAffectedClient: affected === 0 ? 0 : failure.length / affected,
    peakPerSecond: peak(all, 1000),
    baselinePeakPerSecond: peak(regular, 1000),
    peakPer10ms: peak(all, 10),
    oldMoveMeanMs: affected === 0 ? 0 : oldMoveSum / affected,
    oldMoveMaxMs: oldMoveMax
  }
}
