/**
 * What a relay pod's observed state means: ready, finished, failing, blocked
 * on its hostPort; its slot and node. Pure functions of one pod.
 */
import { ANNOTATIONS, LABELS, type Pod } from './api.js'

export function isTerminating (pod: { metadata: { deletionTimestamp?: string } }): boolean {
  return pod.metadata.deletionTimestamp != null
}

export function isPodReady (pod: Pod): boolean {
  if (isTerminating(pod) || pod.status?.phase !== 'Running') return false
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true
}

export function isPodFinished (pod: Pod): boolean {
  return pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded'
}

const PORT_MESSAGE = /free ports|host ?ports?|port .*(in use|conflict|taken|unavailable)/i

/** the scheduler's or kubelet's message when the hostPort is taken, else undefined */
export function hostPortConflictOf (pod: Pod): string | undefined {
  if (isTerminating(pod)) return undefined
  const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled')
  if (sched?.status === 'False' && PORT_MESSAGE.test(`${sched.reason ?? ''} ${sched.message ?? ''}`)) return sched.message ?? sched.reason ?? 'host port taken'
  if (pod.status?.phase === 'Failed' && (pod.status.reason === 'NodePorts' || PORT_MESSAGE.test(pod.status.message ?? ''))) return pod.status.message ?? 'host port taken'
  if (pod.status?.phase === 'Pending' && PORT_MESSAGE.test(pod.status.message ?? '')) return pod.status.message
  return undefined
}

export function unschedulableOf (pod: Pod): string | undefined {
  const sched = pod.status?.conditions?.find((c) => c.type === 'PodScheduled')
  if (sched?.status === 'False' && sched.reason === 'Unschedulable') return sched.message ?? 'unschedulable'
  return undefined
}

const FAILING_WAIT_REASONS = new Set(['CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'CreateContainerConfigError', 'CreateContainerError', 'InvalidImageName', 'RunContainerError'])

export function containerFailureOf (pod: Pod): string | undefined {
  for (const cs of pod.status?.containerStatuses ?? []) {
    const reason = cs.state?.waiting?.reason
    if (reason != null && FAILING_WAIT_REASONS.has(reason)) return `${cs.name}: ${reason}${cs.state?.waiting?.message != null ? ` (${cs.state.waiting.message})` : ''}`
  }
  return undefined
}

export function podPhase (pod: Pod): string {
  if (isTerminating(pod)) return 'Draining'
  if (isPodFinished(pod)) return pod.status?.phase ?? 'Failed'
  if (hostPortConflictOf(pod) != null || unschedulableOf(pod) != null) return 'Unschedulable'
  if (containerFailureOf(pod) != null) return 'Failing'
  if (isPodReady(pod)) return 'Running'
  if (pod.status?.phase === 'Running') return 'NotReady'
  return 'Pending'
}

export function slotOf (obj: { metadata: { labels?: Record<string, string> } }): number | undefined {
  const v = obj.metadata.labels?.[LABELS.slot]
  return v != null && /^(0|[1-9]\d{0,5})$/.test(v) ? Number(v) : undefined
}

/** node a pod runs on, or is pinned to while unscheduled */
export function nodeOfPod (pod: Pod): string | undefined {
  return pod.spec?.nodeName ?? pod.metadata.annotations?.[ANNOTATIONS.node]
}

export function hostPortOfPod (pod: Pod): number | undefined {
  for (const c of pod.spec?.containers ?? []) for (const p of c.ports ?? []) if (p.hostPort != null && (p.protocol ?? 'TCP') === 'TCP') return p.hostPort
  return undefined
}
