/**
 * A discrete-time model of where listeners reserve and where dialers look for them (ENG-1672),
 * for three strategies: rendezvous ranking (the SDK's rankRelays), random choice, and "reserve on
 * every relay". Time runs in ticks; a poll period is `ticksPerPoll` ticks and every peer polls
 * discovery once per period at its own phase, so its relay list is up to one period stale. Relays
 * leave (and come back after a while), and new ones join, at random ticks.
 *
 * Pure and deterministic: the seed fixes every random choice; scores come in precomputed.
 */
import { seededRandom } from '@pos-relay/testing'

export type Strategy = 'rendezvous' | 'random' | 'all'

export interface SimOptions {
  peers: number
  /** relays listed at the start */
  relays: number
  /** relays a listener reserves on (ignored by 'all') */
  relayCount: number
  strategy: Strategy
  /** poll periods simulated */
  periods: number
  ticksPerPoll: number
  /** dials per tick, each from a random peer to another random peer */
  dialsPerTick: number
  /** per relay and period: chance of leaving the list (restart, node loss); it is back after 1..maxDownPeriods periods */
  leaveChance: number
  maxDownPeriods: number
  /** per period: chance that a new relay joins for good, and that one leaves for good */
  joinChance: number
  retireChance: number
  seed: number
  /**
   * score(peer, relay): the rendezvous score as a number that orders like the SDK's 64-bit score
   * (its top 53 bits); the runner precomputes it with the SDK's relayScore.
   */
  score: (peer: number, relay: number) => number
}

export interface SimResult {
  dials: number
  /** the first relay the dialer tries holds the target's reservation */
  firstHit: number
  /** found within relayCount + 2 relays */
  foundWithinBudget: number
  /** relays tried per successful dial, summed */
  attemptsOfFound: number
  /** relay connections a listener holds, averaged over peers and sample ticks */
  connectionsPerPeer: number
  /** listeners per listed relay at the sample ticks */
  perRelay: { mean: number, min: number, max: number, cv: number }
  /** reservations a listener made, per peer and period (moves caused by churn and list changes) */
  reservationsMadePerPeerPeriod: number
}

/** Fisher-Yates on a copy */
function shuffled<T> (xs: readonly T[], rnd: () => number): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    const t = out[i]!; out[i] = out[j]!; out[j] = t
  }
  return out
}

export function rankFor (peer: number, relays: readonly number[], score: SimOptions['score']): number[] {
  return [...relays].sort((a, b) => score(peer, b) - score(peer, a))
}

export function simulate (o: SimOptions): SimResult {
  const rnd = seededRandom(o.seed)
  const totalTicks = o.periods * o.ticksPerPoll
  // membership: listed[t] = relays listed at tick t
  const listedAt: number[][] = []
  const downUntil = new Map<number, number>()
  let current = Array.from({ length: o.relays }, (_, i) => i)
  let nextRelay = o.relays
  for (let t = 0; t < totalTicks; t++) {
    if (t > 0) {
      const perTick = (p: number): number => 1 - (1 - p) ** (1 / o.ticksPerPoll)
      const next: number[] = []
      for (const r of current) {
        if (rnd() < perTick(o.leaveChance)) downUntil.set(r, t + o.ticksPerPoll * (1 + Math.floor(rnd() * o.maxDownPeriods)))
        else next.push(r)
      }
      for (const [r, until] of downUntil) if (until <= t) { downUntil.delete(r); next.push(r) }
      if (rnd() < perTick(o.joinChance)) next.push(nextRelay++)
      if (next.length > 1 && rnd() < perTick(o.retireChance)) next.splice(Math.floor(rnd() * next.length), 1)
      current = next.sort((a, b) => a - b)
    }
    listedAt.push(current)
  }
  const phase = Array.from({ length: o.peers }, () => Math.floor(rnd() * o.ticksPerPoll))
  /** the list a peer last polled at tick t */
  const viewOf = (p: number, t: number): number[] => listedAt[Math.max(0, t - ((t - phase[p]! + o.ticksPerPoll) % o.ticksPerPoll))]!

  // listener state: the relays it holds a reservation on (or keeps retrying)
  const chosen: number[][] = Array.from({ length: o.peers }, () => [])
  let made = 0
  const choose = (p: number, view: number[]): void => {
    let next: number[]
    if (o.strategy === 'all') next = view
    else if (o.strategy === 'rendezvous') next = rankFor(p, view, o.score).slice(0, o.relayCount)
    else {
      // random, sticky: keep the relays still listed, fill up with random others
      const listed = new Set(view)
      next = chosen[p]!.filter((r) => listed.has(r))
      for (const r of shuffled(view.filter((r) => !next.includes(r)), rnd)) {
        if (next.length >= o.relayCount) break
        next.push(r)
      }
    }
    const before = new Set(chosen[p])
    for (const r of next) if (!before.has(r)) made++
    chosen[p] = next
  }

  const res: SimResult = { dials: 0, firstHit: 0, foundWithinBudget: 0, attemptsOfFound: 0, connectionsPerPeer: 0, perRelay: { mean: 0, min: 0, max: 0, cv: 0 }, reservationsMadePerPeerPeriod: 0 }
  const budget = o.strategy === 'all' ? Infinity : o.relayCount + 2
  let connSamples = 0
  const perRelaySamples: number[] = []
  const warmup = o.ticksPerPoll // every peer has polled once
  for (let t = 0; t < totalTicks; t++) {
    const alive = new Set(listedAt[t])
    for (let p = 0; p < o.peers; p++) {
      if ((t - phase[p]!) % o.ticksPerPoll === 0) choose(p, viewOf(p, t))
      // the failover rule (docs/protocol.md section 4): a listener that loses a chosen relay moves
      // at once to the next usable relays of its (possibly stale) list, skipping those it saw fail
      else if (o.strategy !== 'all' && chosen[p]!.some((r) => !alive.has(r))) choose(p, viewOf(p, t).filter((r) => alive.has(r)))
    }
    if (t === warmup - 1) made = 0
    if (t < warmup) continue
    const holds = (p: number, r: number): boolean => alive.has(r) && chosen[p]!.includes(r)
    for (let i = 0; i < o.dialsPerTick; i++) {
      const d = Math.floor(rnd() * o.peers)
      let target = Math.floor(rnd() * (o.peers - 1))
      if (target >= d) target++
      const view = viewOf(d, t)
      const order = o.strategy === 'rendezvous' ? rankFor(target, view, o.score) : shuffled(view, rnd)
      res.dials++
      if (order[0] != null && holds(target, order[0])) res.firstHit++
      const at = order.slice(0, budget === Infinity ? order.length : budget).findIndex((r) => holds(target, r))
      if (at >= 0) { res.foundWithinBudget++; res.attemptsOfFound += at + 1 }
    }
    if ((t - warmup) % o.ticksPerPoll === 0) {
      const count = new Map<number, number>(listedAt[t]!.map((r) => [r, 0]))
      for (let p = 0; p < o.peers; p++) {
        const held = chosen[p]!.filter((r) => alive.has(r))
        res.connectionsPerPeer += held.length
        for (const r of held) count.set(r, (count.get(r) ?? 0) + 1)
      }
      connSamples++
      perRelaySamples.push(...count.values())
    }
  }
  res.connectionsPerPeer /= connSamples * o.peers
  const mean = perRelaySamples.reduce((a, b) => a + b, 0) / perRelaySamples.length
  const sd = Math.sqrt(perRelaySamples.reduce((a, b) => a + (b - mean) ** 2, 0) / perRelaySamples.length)
  res.perRelay = { mean, min: Math.min(...perRelaySamples), max: Math.max(...perRelaySamples), cv: sd / mean }
  res.reservationsMadePerPeerPeriod = made / o.peers / (o.periods - 1)
  return res
}
