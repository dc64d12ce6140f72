/**
 * metav1.Condition handling as cert-manager does it: every write stamps the
 * current observedGeneration; lastTransitionTime changes only when the status
 * flips (a new reason or message alone keeps the old time).
 */
import type { Condition, ConditionStatus } from './api.js'

export const CONDITION_TYPES = ['Ready', 'Progressing', 'Degraded', 'HostPortConflict'] as const
export type ConditionType = typeof CONDITION_TYPES[number]

export interface ConditionInput {
  type: string
  status: ConditionStatus
  reason: string
  message: string
}

/** Kubernetes timestamps: RFC 3339 in UTC, whole seconds (metav1.Time). */
export function k8sTime (ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z')
}

/**
 * Returns the condition to store, given the previous one (if any).
 * Pure: `now` is the time to use for a transition.
 */
export function nextCondition (previous: Condition | undefined, next: ConditionInput, generation: number | undefined, now: number): Condition {
  const flipped = previous == null || previous.status !== next.status
  const out: Condition = {
    type: next.type,
    status: next.status,
    lastTransitionTime: flipped ? k8sTime(now) : previous.lastTransitionTime,
    reason: next.reason,
    message: truncate(next.message, 32_768)
  }
  if (generation != null) out.observedGeneration = generation
  return out
}

/** Applies `inputs` to `previous`, in the order of `inputs`; conditions of other types are kept. */
export function setConditions (previous: Condition[] | undefined, inputs: ConditionInput[], generation: number | undefined, now: number): Condition[] {
  const byType = new Map((previous ?? []).map((c) => [c.type, c]))
  const out: Condition[] = []
  for (const input of inputs) {
    out.push(nextCondition(byType.get(input.type), input, generation, now))
    byType.delete(input.type)
  }
  for (const rest of byType.values()) out.push(rest)
  return out
}

export function findCondition (conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type)
}

function truncate (s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + '…'
}
