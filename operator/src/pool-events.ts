/**
 * Events about a pool, as pure functions of what changed: a hostPort conflict
 * appearing or ending, a relay listed in or removed from discovery.
 */
import { API_VERSION, KIND, LABELS, type Node, type RelayPool } from './api.js'
import { findCondition } from './conditions.js'
import type { Desired } from './desired.js'
import { AUTH_SECRET_INVALID } from './desired-conditions.js'
import type { EventInput, ObjectRef } from './events.js'
import type { RegistryTransition } from './registry.js'

export function poolRef (pool: RelayPool): ObjectRef {
  return { apiVersion: API_VERSION, kind: KIND, name: pool.metadata.name, namespace: pool.metadata.namespace ?? 'default', ...(pool.metadata.uid != null ? { uid: pool.metadata.uid } : {}) }
}

/** `namespace/pool` of a pod or Secret the operator manages, from its pool label */
export function poolKeyOf (obj: { metadata: { namespace?: string, labels?: Record<string, string> } }): string | undefined {
  const pool = obj.metadata.labels?.[LABELS.pool]
  return pool != null && obj.metadata.namespace != null ? `${obj.metadata.namespace}/${pool}` : undefined
}

/** the parts of a Node that matter to placement and addresses */
export function nodeFingerprint (n: Node): string {
  return JSON.stringify([n.metadata.labels, n.metadata.annotations, n.spec?.taints, n.spec?.unschedulable, n.status?.addresses])
}

/**
 * Events for condition changes that need a person: a hostPort conflict
 * appearing (or changing kind), and its end. Compared with the status the
 * pool had before this reconcile, so a conflict that persists is not
 * reported again on every loop (and not again after an operator restart).
 */
export function conditionEvent (pool: RelayPool, d: Desired): EventInput | undefined {
  const before = findCondition(pool.status?.conditions, 'HostPortConflict')
  const now = findCondition(d.status.conditions, 'HostPortConflict')
  if (now == null) return undefined
  if (now.status === 'True' && (before?.status !== 'True' || before.reason !== now.reason)) {
    return { regarding: poolRef(pool), type: 'Warning', reason: 'HostPortConflict', action: 'PlaceRelays', note: `${now.reason}: ${now.message}` }
  }
  if (now.status !== 'True' && before?.status === 'True') {
    return { regarding: poolRef(pool), type: 'Normal', reason: 'HostPortConflictResolved', action: 'PlaceRelays', note: now.message }
  }
  return undefined
}

/** the Event (without its subject) for a relay listed in or removed from discovery */
export function registryTransitionEvent (t: RegistryTransition): Omit<EventInput, 'regarding'> {
  const reg = t.registration
  const relay = reg?.meta.pod != null ? `relay ${reg.meta.pod} (slot ${reg.meta.slot ?? '?'}, ${reg.peer_id})` : `relay ${t.op === 'deregistered' ? t.id : reg?.id ?? '?'}`
  if (t.op === 'registered') return { type: 'Normal', reason: 'RelayRegistered', action: 'Register', note: `Listed ${relay} in discovery as ${t.registration.addrs.join(', ')}` }
  return { type: 'Normal', reason: 'RelayDeregistered', action: 'Deregister', note: `Removed ${relay} from discovery` }
}

/**
 * A Warning when the pool's spec.auth Secrets become unusable (missing, a
 * private key: nothing is applied then), and a Normal Event when they are
 * usable again; from the Degraded condition before and after this reconcile.
 */
export function authEvent (pool: RelayPool, d: Desired): EventInput | undefined {
  const before = findCondition(pool.status?.conditions, 'Degraded')
  const now = findCondition(d.status.conditions, 'Degraded')
  const was = before?.status === 'True' && before.reason === AUTH_SECRET_INVALID
  const is = now?.status === 'True' && now.reason === AUTH_SECRET_INVALID
  if (is && (!was || before.message !== now.message)) return { regarding: poolRef(pool), type: 'Warning', reason: AUTH_SECRET_INVALID, action: 'CheckAuth', note: now.message }
  if (!is && was) return { regarding: poolRef(pool), type: 'Normal', reason: 'AuthSecretValid', action: 'CheckAuth', note: 'spec.auth\'s Secrets are usable again; relays are created and updated' }
  return undefined
}
