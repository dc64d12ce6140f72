/**
 * Slot placement: which node each slot of a pool runs on (see desired.ts for
 * the rules). Pure; it only asks `del` to delete pods that must leave.
 */
import { createHash } from 'node:crypto'
import type { Node, Pod } from './api.js'
import type { NodeEligibility } from './nodes.js'
import { nodeOfPod, slotOf } from './pod-state.js'

export interface PlacementInput {
  perNode: boolean
  /** spec.replicas (replicas mode) */
  replicas: number
  /** seeds the rendezvous hash: the pool's uid */
  poolKey: string
  /** sorted by name */
  nodes: Node[]
  elig: Map<string, NodeEligibility>
  /** nodes where another pool's relay holds the same hostPort */
  occupiedByOthers: Set<string>
  /** live (not terminating) pods by slot; a pod that must leave its node moves to `terminating` */
  live: Map<number, Pod>
  terminating: Map<number, Pod>
  /** slots that have an identity Secret */
  secretSlots: number[]
  /** the node a slot's Secret remembers */
  rememberedNode: (slot: number) => string | undefined
  del: (pod: Pod, reason: string) => void
}

export interface Placement {
  /** slot → node */
  assignment: Map<number, string>
  desiredCount: number
  /** slots without a free node */
  unplaced: number
  eligibleCount: number
}

export function placeSlots (i: PlacementInput): Placement {
  const { perNode, nodes, elig, occupiedByOthers, live, terminating, rememberedNode, del } = i
  const assignment = new Map<number, string>() // slot → node
  const usedNodes = new Set<string>() // nodes holding a relay of this pool (assigned, or a pod still there)
  for (const p of terminating.values()) { const n = nodeOfPod(p); if (n != null) usedNodes.add(n) }
  let desiredCount: number
  let unplaced = 0
  let eligibleCount = 0

  if (perNode) {
    const targets = nodes.filter((n) => {
      const e = elig.get(n.metadata.name)!
      if (e.place) return true
      // keep a relay that already runs there
      return e.keep && [...live.values()].some((p) => nodeOfPod(p) === n.metadata.name)
    }).map((n) => n.metadata.name)
    eligibleCount = targets.length
    desiredCount = targets.length
    const targetSet = new Set(targets)
    const takenSlots = new Set<number>()
    const pending: string[] = []
    for (const node of targets) {
      const pod = [...live.entries()].find(([s, p]) => nodeOfPod(p) === node && !takenSlots.has(s))
      if (pod != null) { assignment.set(pod[0], node); takenSlots.add(pod[0]); continue }
      pending.push(node)
    }
    const rest: string[] = []
    for (const node of pending) {
      const s = [...i.secretSlots].sort((a, b) => a - b).find((slot) => !takenSlots.has(slot) && !live.has(slot) && rememberedNode(slot) === node)
      if (s != null) { assignment.set(s, node); takenSlots.add(s); continue }
      rest.push(node)
    }
    for (const node of rest) {
      let s = 0
      // a free slot: not assigned, no live pod, and its Secret (if any) does not remember another target node
      while (takenSlots.has(s) || live.has(s) || terminating.has(s) || (rememberedNode(s) != null && rememberedNode(s) !== node && targetSet.has(rememberedNode(s)!))) s++
      assignment.set(s, node)
      takenSlots.add(s)
    }
  } else {
    const replicas = i.replicas
    desiredCount = replicas
    // keep live pods whose node is still fine
    for (let slot = 0; slot < replicas; slot++) {
      const p = live.get(slot)
      const n = p != null ? nodeOfPod(p) : undefined
      if (n != null && elig.get(n)?.keep === true && !usedNodes.has(n)) { assignment.set(slot, n); usedNodes.add(n) }
    }
    // a slot whose own pod is on its way out returns to that node (its port frees when the pod is gone)
    for (let slot = 0; slot < replicas; slot++) {
      const p = terminating.get(slot)
      const n = p != null ? nodeOfPod(p) : undefined
      if (assignment.has(slot) || live.has(slot) || n == null || elig.get(n)?.place !== true) continue
      if ([...assignment.values()].includes(n)) continue
      assignment.set(slot, n)
    }
    for (const p of live.values()) { const n = nodeOfPod(p); if (n != null && !assignment.has(slotOf(p)!)) usedNodes.add(n) }
    const placeable = nodes.filter((n) => elig.get(n.metadata.name)!.place).map((n) => n.metadata.name)
    eligibleCount = placeable.length
    const free = (n: string): boolean => !usedNodes.has(n) && !occupiedByOthers.has(n)
    for (let slot = 0; slot < replicas; slot++) {
      if (assignment.has(slot)) continue
      if (live.has(slot)) {
        // its pod is on a node it may no longer use: replace it
        const p = live.get(slot)!
        del(p, `node ${nodeOfPod(p) ?? '?'} is no longer eligible`)
        live.delete(slot)
        terminating.set(slot, p)
        continue // the new pod waits until the old one is gone (same name)
      }
      const remembered = rememberedNode(slot)
      let node = remembered != null && placeable.includes(remembered) && free(remembered) ? remembered : undefined
      if (node == null) {
        const key = `${i.poolKey}:${slot}`
        node = placeable.filter(free).sort((a, b) => (score(key, a) < score(key, b) ? 1 : -1))[0]
      }
      if (node == null) { unplaced++; continue }
      assignment.set(slot, node)
      usedNodes.add(node)
    }
  }
  return { assignment, desiredCount, unplaced, eligibleCount }
}

/** rendezvous (highest random weight) score of `node` for `slotKey` */
function score (slotKey: string, node: string): string {
  return createHash('sha256').update(slotKey).update('\0').update(node).digest('hex')
}
