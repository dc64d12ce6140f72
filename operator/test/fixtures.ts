// Builders for the objects computeDesired observes (plain JSON, as the API server sends them).
import { ANNOTATIONS, buildPod, computeDesired, FIELD_MANAGER, LABELS, podName, secretName, type Observed, type RelayPool } from '@pos-relay/operator'

export const NOW = Date.parse('2026-01-01T00:00:00Z')

export function pool (spec: Record<string, unknown> = {}, meta: Record<string, unknown> = {}): RelayPool {
  return {
    apiVersion: 'pos-relay.io/v1alpha1',
    kind: 'RelayPool',
    metadata: { name: 'edge', namespace: 'relays', uid: 'uid-edge', generation: 1, finalizers: ['pos-relay.io/registry-cleanup'], ...meta },
    spec: { replicas: 2, image: 'pos-relay:test', hostPort: 7373, discovery: { redisUrlSecretRef: { name: 'disc' }, ttlSeconds: 30 }, drainSeconds: 30, ...spec }
  } as RelayPool
}

export function node (name: string, opts: { external?: string, internal?: string, labels?: Record<string, string>, taints?: any[], unschedulable?: boolean, annotations?: Record<string, string> } = {}): any {
  const addresses: any[] = []
  if (opts.external != null) addresses.push({ type: 'ExternalIP', address: opts.external })
  if (opts.internal !== undefined) addresses.push({ type: 'InternalIP', address: opts.internal })
  else addresses.push({ type: 'InternalIP', address: `10.0.0.${name.replace(/\D/g, '') || '1'}` })
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...(opts.labels ?? {}) }, ...(opts.annotations != null ? { annotations: opts.annotations } : {}) },
    spec: { ...(opts.taints != null ? { taints: opts.taints } : {}), ...(opts.unschedulable != null ? { unschedulable: opts.unschedulable } : {}) },
    status: { addresses }
  }
}

export function identity (p: RelayPool, slot: number, nodeName?: string, peerId = `12D3KooWPeer${slot}`): any {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: secretName(p.metadata.name, slot),
      namespace: p.metadata.namespace,
      uid: `secret-uid-${slot}`,
      labels: { [LABELS.managedBy]: FIELD_MANAGER, [LABELS.pool]: p.metadata.name, [LABELS.slot]: String(slot), [LABELS.component]: 'relay-identity' },
      annotations: { [ANNOTATIONS.peerId]: peerId, ...(nodeName != null ? { [ANNOTATIONS.node]: nodeName } : {}) }
    },
    data: { 'config.json': 'e30=' }
  }
}

export type PodState = 'pending' | 'running' | 'ready' | 'terminating' | 'failed' | 'portconflict' | 'crashloop'

/** the pod the operator would create for `slot` on `nodeName`, in the given state (as kubelet/scheduler would report it) */
export function relayPod (p: RelayPool, slot: number, nodeName: string, state: PodState = 'ready', address?: string): any {
  const n = node(nodeName)
  const addr = address ?? n.status.addresses.find((a: any) => a.type === 'InternalIP').address
  const pod: any = structuredClone(buildPod({ pool: p, slot, node: nodeName, publicAddress: addr, image: p.spec.image ?? 'img', imagePullPolicy: p.spec.imagePullPolicy ?? 'IfNotPresent' }))
  pod.metadata.uid = `pod-uid-${slot}`
  pod.metadata.resourceVersion = '1'
  if (state !== 'pending' && state !== 'portconflict') pod.spec.nodeName = nodeName
  switch (state) {
    case 'pending': pod.status = { phase: 'Pending' }; break
    case 'portconflict': pod.status = { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/3 nodes are available" }] }; break
    case 'running': pod.status = { phase: 'Running', podIP: '10.244.0.5', conditions: [{ type: 'Ready', status: 'False' }] }; break
    case 'ready': pod.status = { phase: 'Running', podIP: '10.244.0.5', conditions: [{ type: 'Ready', status: 'True' }] }; break
    case 'terminating': pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] }; pod.metadata.deletionTimestamp = '2026-01-01T00:00:00Z'; break
    case 'failed': pod.status = { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' }; break
    case 'crashloop': pod.status = { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'relay', state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s' } } }] }; break
  }
  return pod
}

export function observe (o: Partial<Observed> & { pool: RelayPool }): Observed {
  return {
    pods: [],
    secrets: [],
    nodes: [],
    otherRelayPods: [],
    registry: { configured: true, registered: new Set() },
    defaults: {},
    now: NOW,
    ...o
  }
}

export const compute = (o: Partial<Observed> & { pool: RelayPool }) => computeDesired(observe(o))
export { podName, secretName }
