/**
 * Applies what computeDesired decided for a pool's children: identity Secrets
 * (a new key for each created one), pods (server-side apply), deletions with a
 * uid precondition. Every failure is collected, so one bad child does not stop
 * the others; a pod whose Secret could not be created waits.
 */
import { ANNOTATIONS, CONFIG_KEY, corePath, type Pod, type RelayPool, type Secret } from './api.js'
import type { Desired } from './desired.js'
import type { EventRecorder } from './events.js'
import { newRelayIdentity } from './identity.js'
import { isConflict, isNotFound, type KubeClient } from './kube.js'
import { registryId } from './manifests.js'
import { poolRef } from './pool-events.js'
import { slotOf } from './pod-state.js'
import type { Logger } from '@pos-relay/shared'

export interface ChildDeps {
  client: KubeClient
  log: Logger
  events: EventRecorder
  /** pool key → data of the limits ConfigMap last applied: unchanged data is not sent again (re-sent whenever pods are created) */
  appliedLimits?: Map<string, string>
}

export async function applyChildren (deps: ChildDeps, key: string, pool: RelayPool, d: Desired): Promise<Error[]> {
  const { client, log, events } = deps
  const errors: Error[] = []
  const ns = pool.metadata.namespace ?? 'default'
  const failedSecrets = new Set<string>()
  const createdPeers = new Map<string, string>() // Secret name → peer id of the key just generated
  // the limits ConfigMap first: a pod mounting a missing one would wait in ContainerCreating
  const limits = d.limitsConfigMap
  const limitsData = JSON.stringify(limits.data)
  let limitsMissing = false
  if (deps.appliedLimits?.get(key) !== limitsData || d.createPods.length > 0) {
    try {
      await client.apply(`${corePath('configmaps', ns)}/${limits.metadata!.name}`, limits)
      if (deps.appliedLimits?.get(key) !== limitsData) log.info({ event: 'relay_limits_applied', pool: key, configmap: limits.metadata!.name }, 'relay limits ConfigMap applied')
      deps.appliedLimits?.set(key, limitsData)
    } catch (err: any) {
      deps.appliedLimits?.delete(key)
      limitsMissing = true
      errors.push(err)
    }
  }
  await Promise.all(d.createSecrets.map(async (s) => {
    try {
      const slot = slotOf(s as Secret)!
      const { peerId, configJson } = await newRelayIdentity(registryId(ns, pool.metadata.name, slot))
      s.metadata!.annotations![ANNOTATIONS.peerId] = peerId
      s.data = { [CONFIG_KEY]: Buffer.from(configJson).toString('base64') }
      await client.apply(`${corePath('secrets', ns)}/${s.metadata!.name}`, s)
      createdPeers.set(s.metadata!.name!, peerId)
      log.info({ event: 'identity_created', pool: key, slot, peer_id: peerId }, 'relay identity created')
    } catch (err: any) {
      failedSecrets.add(s.metadata!.name!)
      errors.push(err)
    }
  }))
  await Promise.all(d.updateSecrets.map(async (s) => {
    try { await client.apply(`${corePath('secrets', ns)}/${s.metadata!.name}`, s) } catch (err: any) { errors.push(err) }
  }))
  await Promise.all(d.createPods.map(async (p) => {
    if (limitsMissing) return
    const secretName = p.spec?.volumes?.[0]?.secret?.secretName
    if (secretName != null && failedSecrets.has(secretName)) return
    const peerId = secretName != null ? createdPeers.get(secretName) : undefined
    if (peerId != null) p.metadata!.annotations![ANNOTATIONS.peerId] = peerId
    try {
      const created = await client.apply<Pod>(`${corePath('pods', ns)}/${p.metadata!.name}`, p)
      const node = p.metadata!.annotations![ANNOTATIONS.node]
      log.info({ event: 'relay_pod_created', pool: key, pod: p.metadata!.name, node }, 'relay pod created')
      events.record({
        regarding: poolRef(pool),
        related: { apiVersion: 'v1', kind: 'Pod', namespace: ns, name: p.metadata!.name!, ...(created?.metadata?.uid != null ? { uid: created.metadata.uid } : {}) },
        type: 'Normal',
        reason: 'RelayPodCreated',
        action: 'Create',
        note: `Created relay pod ${p.metadata!.name} on node ${node ?? '?'} (public address ${p.metadata!.annotations![ANNOTATIONS.publicAddress] ?? '?'})`
      })
    } catch (err: any) { errors.push(err) }
  }))
  await Promise.all(d.deletePods.map(async (p) => {
    try {
      await client.delete(`${corePath('pods', ns)}/${p.name}`, { apiVersion: 'v1', kind: 'DeleteOptions', ...(p.uid != null ? { preconditions: { uid: p.uid } } : {}) })
      log.info({ event: 'relay_pod_deleted', pool: key, pod: p.name, reason: p.reason }, 'relay pod deleted')
      events.record({
        regarding: poolRef(pool),
        related: { apiVersion: 'v1', kind: 'Pod', namespace: ns, name: p.name, ...(p.uid != null ? { uid: p.uid } : {}) },
        type: 'Normal',
        reason: 'RelayPodDeleted',
        action: 'Delete',
        note: `Deleted relay pod ${p.name}: ${p.reason}`
      })
    } catch (err: any) { if (!isNotFound(err) && !isConflict(err)) errors.push(err) }
  }))
  await Promise.all(d.deleteSecrets.map(async (s) => {
    try {
      await client.delete(`${corePath('secrets', ns)}/${s.name}`, { apiVersion: 'v1', kind: 'DeleteOptions', ...(s.uid != null ? { preconditions: { uid: s.uid } } : {}) })
    } catch (err: any) { if (!isNotFound(err) && !isConflict(err)) errors.push(err) }
  }))
  return errors
}
