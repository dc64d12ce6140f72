/**
 * The pool's conditions (Ready, Progressing, Degraded, HostPortConflict) from
 * what computeDesired found and decided. Pure.
 */
import type { Node, Pod } from './api.js'
import type { ConditionInput } from './conditions.js'
import type { RegistryObservation, SlotPlan } from './desired.js'
import type { NodeEligibility } from './nodes.js'
import { containerFailureOf, hostPortConflictOf, isPodFinished, isPodReady, isTerminating, nodeOfPod, unschedulableOf } from './pod-state.js'

export interface ConditionsInput {
  perNode: boolean
  hostPort: number
  /** why the pool may not use its hostPort, if it may not */
  portRefused: string | undefined
  /** why spec.auth's Secrets cannot be used, if they cannot */
  authRefused?: string | undefined
  imageSet: boolean
  registry: RegistryObservation
  nodes: Node[]
  elig: Map<string, NodeEligibility>
  occupiedByOthers: Set<string>
  /** the pool's own pods */
  pods: Pod[]
  slots: SlotPlan[]
  counts: { desired: number, ready: number, registered: number, unplaced: number, eligible: number }
  /** what this reconcile changes: pods and Secrets created, pods deleted, outdated and draining pods */
  changes: { createPods: number, createSecrets: number, deletePods: number, outdated: number, draining: number }
}

/** reason of Degraded and Progressing while spec.auth's Secrets cannot be used */
export const AUTH_SECRET_INVALID = 'AuthSecretInvalid'

export function poolConditions (i: ConditionsInput): ConditionInput[] {
  const { perNode, hostPort, portRefused, authRefused, imageSet, registry, nodes, elig, occupiedByOthers, pods, slots, changes } = i
  const { desired: desiredCount, ready: readyCount, registered: registeredCount, unplaced, eligible: eligibleCount } = i.counts
  const portConflicts: string[] = []
  const unschedulable: string[] = []
  const failing: string[] = []
  for (const p of pods) {
    const c = hostPortConflictOf(p)
    if (c != null) { portConflicts.push(`${p.metadata.name} on ${nodeOfPod(p) ?? '?'}: ${c}`); continue }
    const u = unschedulableOf(p)
    if (u != null) unschedulable.push(`${p.metadata.name}: ${u}`)
    const f = containerFailureOf(p)
    if (f != null) failing.push(`${p.metadata.name}: ${f}`)
    if (isPodFinished(p) && !isTerminating(p)) failing.push(`${p.metadata.name}: pod ${p.status?.phase}${p.status?.reason != null ? ` (${p.status.reason})` : ''}`)
  }

  const conds: ConditionInput[] = []
  // Ready
  if (desiredCount === 0) {
    conds.push(perNode
      ? { type: 'Ready', status: 'False', reason: 'NoEligibleNodes', message: 'no node matches the pool\'s nodeSelector, affinity and tolerations' }
      : { type: 'Ready', status: 'True', reason: 'ScaledToZero', message: 'spec.replicas is 0' })
  } else if (readyCount < desiredCount) {
    const why = notReadyDetails(slots, pods, elig, unplaced)
    conds.push({ type: 'Ready', status: 'False', reason: 'RelaysNotReady', message: `${readyCount}/${desiredCount} relays ready, ${registeredCount} registered${why !== '' ? `: ${why}` : ''}` })
  } else if (registeredCount < desiredCount) {
    conds.push({ type: 'Ready', status: 'False', reason: 'RelaysNotRegistered', message: `${registeredCount}/${desiredCount} relays registered${registry.error != null ? `: ${registry.error}` : ''}` })
  } else {
    conds.push({ type: 'Ready', status: 'True', reason: 'AllRelaysReady', message: `${readyCount}/${desiredCount} relays ready and registered` })
  }
  // Progressing
  const creating = changes.createPods + changes.createSecrets
  const pendingPods = slots.filter((s) => s.pod != null && !isPodReady(s.pod) && hostPortConflictOf(s.pod) == null).length
  const { outdated, draining } = changes
  if (portRefused != null) {
    conds.push({ type: 'Progressing', status: 'False', reason: 'HostPortNotAllowed', message: portRefused })
  } else if (authRefused != null) {
    conds.push({ type: 'Progressing', status: 'False', reason: AUTH_SECRET_INVALID, message: `no relay is created or replaced until spec.auth is usable: ${authRefused}` })
  } else if (!imageSet) {
    conds.push({ type: 'Progressing', status: 'False', reason: 'ImageNotSet', message: 'set spec.image or the operator\'s RELAY_IMAGE' })
  } else if (creating + pendingPods + outdated + draining + changes.deletePods > 0) {
    const parts: string[] = []
    if (changes.createPods > 0) parts.push(`creating ${changes.createPods}`)
    if (pendingPods > 0) parts.push(`${pendingPods} starting`)
    if (outdated > 0) parts.push(`${outdated} to replace`)
    if (draining + changes.deletePods > 0) parts.push(`${draining + changes.deletePods} draining`)
    const reason = changes.createPods > 0 ? 'CreatingRelays' : outdated > 0 ? 'UpdatingRelays' : draining + changes.deletePods > 0 ? 'DrainingRelays' : 'StartingRelays'
    conds.push({ type: 'Progressing', status: 'True', reason, message: parts.join(', ') })
  } else {
    conds.push({ type: 'Progressing', status: 'False', reason: 'Complete', message: unplaced > 0 ? `${slots.length} relays placed; ${unplaced} wait for a free node` : 'all relays are up to date' })
  }
  // Degraded
  if (!registry.configured) {
    conds.push({ type: 'Degraded', status: 'True', reason: 'RegistryNotConfigured', message: registry.error ?? 'no Redis URL for the discovery registry' })
  } else if (registry.error != null) {
    conds.push({ type: 'Degraded', status: 'True', reason: 'RegistryUnavailable', message: registry.error })
  } else if (authRefused != null) {
    conds.push({ type: 'Degraded', status: 'True', reason: AUTH_SECRET_INVALID, message: authRefused })
  } else if (portRefused != null) {
    conds.push({ type: 'Degraded', status: 'True', reason: 'HostPortNotAllowed', message: portRefused })
  } else if (!imageSet) {
    conds.push({ type: 'Degraded', status: 'True', reason: 'ImageNotSet', message: 'set spec.image or the operator\'s RELAY_IMAGE' })
  } else if (failing.length > 0) {
    conds.push({ type: 'Degraded', status: 'True', reason: 'RelaysFailing', message: failing.join('; ') })
  } else if (unschedulable.length > 0) {
    conds.push({ type: 'Degraded', status: 'True', reason: 'RelaysUnschedulable', message: unschedulable.join('; ') })
  } else {
    conds.push({ type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no relay is failing' })
  }
  // HostPortConflict
  if (portConflicts.length > 0) {
    conds.push({ type: 'HostPortConflict', status: 'True', reason: 'PortInUse', message: `hostPort ${hostPort} is taken: ${portConflicts.join('; ')}` })
  } else if (unplaced > 0) {
    const blocked = nodes.filter((n) => elig.get(n.metadata.name)!.place && occupiedByOthers.has(n.metadata.name)).length
    conds.push({
      type: 'HostPortConflict',
      status: 'True',
      reason: 'InsufficientNodes',
      message: `${unplaced} of ${desiredCount} relays have no node: ${eligibleCount} eligible nodes, ${blocked} of them already run another relay on port ${hostPort}; at most one relay per node and port`
    })
  } else {
    conds.push({ type: 'HostPortConflict', status: 'False', reason: 'NoConflict', message: `hostPort ${hostPort} is free on every relay's node` })
  }
  return conds
}

/**
 * Why relays are short of ready, naming pods and nodes (a drained or cordoned
 * node shows up here), so `kubectl get rp -o wide` and the Ready condition
 * point at what to look at.
 */
export function notReadyDetails (slots: SlotPlan[], pods: Pod[], elig: Map<string, NodeEligibility>, unplaced: number): string {
  const parts: string[] = []
  const nodeWhy = (n: string | undefined): string => {
    const e = n != null ? elig.get(n) : undefined
    return e != null && !e.place && e.reason != null ? ` (${e.reason})` : ''
  }
  for (const s of slots) {
    if (s.pod == null) parts.push(`slot ${s.slot} starting on ${s.node ?? '?'}`)
    else if (!isPodReady(s.pod)) parts.push(`${s.pod.metadata.name} not ready on ${nodeOfPod(s.pod) ?? '?'}`)
  }
  for (const p of pods) {
    if (isTerminating(p)) parts.push(`${p.metadata.name} leaving ${nodeOfPod(p) ?? '?'}${nodeWhy(nodeOfPod(p))}`)
  }
  if (unplaced > 0) {
    const closed = [...elig].filter(([, e]) => !e.place).map(([n, e]) => `${n}${e.reason != null ? ` (${e.reason})` : ''}`)
    parts.push(`${unplaced} waiting for a free node${closed.length > 0 ? `; not placeable: ${closed.slice(0, 3).join(', ')}${closed.length > 3 ? ', …' : ''}` : ''}`)
  }
  return parts.join('; ')
}
