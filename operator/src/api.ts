/**
 * The RelayPool API as documented in crds/README.md (group pos-relay.io,
 * version v1alpha1), plus the Kubernetes object shapes the operator reads.
 *
 * Objects are kept as plain JSON exactly as the API server sends them (no
 * class instances, timestamps stay strings), so what the operator observes can
 * be compared with what it wants without conversions.
 */
import type { V1Affinity, V1LocalObjectReference, V1Node, V1Pod, V1ResourceRequirements, V1Secret, V1Toleration } from '@kubernetes/client-node'

export const GROUP = 'pos-relay.io'
export const VERSION = 'v1alpha1'
export const API_VERSION = `${GROUP}/${VERSION}`
export const KIND = 'RelayPool'
export const PLURAL = 'relaypools'

/** The operator's single server-side-apply field manager. */
export const FIELD_MANAGER = 'pos-relay-operator'
/** Guards the discovery registry: removed only after the pool's relays are deregistered. */
export const FINALIZER = 'pos-relay.io/registry-cleanup'

/** Port the relay container always listens on; `spec.hostPort` maps to it. */
export const RELAY_CONTAINER_PORT = 7373
export const RELAY_METRICS_PORT = 9373
export const DEFAULT_HOST_PORT = 7373
export const DEFAULT_TTL_SECONDS = 30
export const DEFAULT_DRAIN_SECONDS = 30
/** where the identity Secret is mounted in the relay pod */
export const CONFIG_DIR = '/etc/pos-relay'
export const CONFIG_KEY = 'config.json'
/** default key of a Secret holding a Redis URL (the CRD's default for every redisUrlSecretRef) */
export const REDIS_URL_KEY = 'redis-url'

export const LABELS = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  instance: 'app.kubernetes.io/instance',
  managedBy: 'app.kubernetes.io/managed-by',
  pool: 'pos-relay.io/pool',
  slot: 'pos-relay.io/slot'
} as const

export const ANNOTATIONS = {
  /** hash of everything the operator puts into a pod: a different hash means "replace the pod" */
  templateHash: 'pos-relay.io/template-hash',
  /** node a slot runs (or last ran) on; on identity Secrets it makes placement sticky */
  node: 'pos-relay.io/node',
  /** peer id of the slot's key (on the identity Secret and the pod) */
  peerId: 'pos-relay.io/peer-id',
  /** public address announced by the pod */
  publicAddress: 'pos-relay.io/public-address'
} as const

export const APP_NAME = 'pos-relay'
export const COMPONENT_RELAY = 'relay'
export const COMPONENT_IDENTITY = 'relay-identity'
/** label selector of every pod and Secret the operator manages */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${FIELD_MANAGER},${LABELS.pool}`

export interface SecretKeyRef { name: string, key?: string }

export type NodeAddressType = 'ExternalIP' | 'InternalIP' | 'ExternalDNS' | 'InternalDNS' | 'Hostname'

export interface RelayPoolSpec {
  replicas?: number
  perNode?: boolean
  nodeSelector?: Record<string, string>
  tolerations?: V1Toleration[]
  affinity?: V1Affinity
  image?: string
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never'
  imagePullSecrets?: V1LocalObjectReference[]
  hostPort?: number
  resources?: V1ResourceRequirements
  limits?: {
    maxReservations?: number
    reservationTtlSeconds?: number
    maxCircuits?: number
    circuitDataLimitBytes?: number
    circuitDurationSeconds?: number
    maxConnections?: number
    maxPendingConnections?: number
    handshakeTimeoutSeconds?: number
    ipMaxConnections?: number
    peerMaxCircuits?: number
    ipMaxCircuits?: number
    circuitIdleTimeoutSeconds?: number
    maxBufferedBytes?: number
  }
  rateLimits?: {
    /** share the counts through Redis (REDIS_URL from redisUrlSecretRef, else discovery.redisUrlSecretRef) */
    shared?: boolean
    redisUrlSecretRef?: SecretKeyRef
    ipConnectionsPerSecond?: number
    peerReservationsPerMinute?: number
    peerCircuitsPerMinute?: number
  }
  discovery?: {
    redisUrlSecretRef?: SecretKeyRef
    p2pSecretRef?: SecretKeyRef
    ttlSeconds?: number
  }
  drainSeconds?: number
  publicAddress?: {
    nodeAddressTypes?: NodeAddressType[]
    nodeAnnotation?: string
    static?: string
  }
  podLabels?: Record<string, string>
  podAnnotations?: Record<string, string>
  priorityClassName?: string
  logLevel?: string
}

export type ConditionStatus = 'True' | 'False' | 'Unknown'

/** metav1.Condition */
export interface Condition {
  type: string
  status: ConditionStatus
  observedGeneration?: number
  lastTransitionTime: string
  reason: string
  message: string
}

export interface RelayStatus {
  pod: string
  slot?: number
  node?: string
  publicAddress?: string
  peerId?: string
  multiaddr?: string
  ready?: boolean
  registered?: boolean
  phase?: string
}

export interface RelayPoolStatus {
  observedGeneration?: number
  desiredRelays?: number
  readyRelays?: number
  registeredRelays?: number
  conditions?: Condition[]
  relays?: RelayStatus[]
}

export interface ObjectMeta {
  name: string
  namespace?: string
  uid?: string
  generation?: number
  resourceVersion?: string
  creationTimestamp?: string
  deletionTimestamp?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  finalizers?: string[]
  ownerReferences?: Array<{ apiVersion: string, kind: string, name: string, uid: string, controller?: boolean, blockOwnerDeletion?: boolean }>
}

export interface RelayPool {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  spec: RelayPoolSpec
  status?: RelayPoolStatus
}

/** Kubernetes objects as observed (plain JSON with metadata.name always present). */
export type Pod = V1Pod & { metadata: ObjectMeta }
export type Node = V1Node & { metadata: ObjectMeta }
export type Secret = V1Secret & { metadata: ObjectMeta }

export function keyOf (obj: { metadata: { name: string, namespace?: string } }): string {
  return obj.metadata.namespace != null && obj.metadata.namespace !== '' ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name
}

export function splitKey (key: string): { namespace: string, name: string } {
  const i = key.indexOf('/')
  return i === -1 ? { namespace: '', name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) }
}

export function poolsPath (namespace?: string): string {
  return namespace != null && namespace !== '' ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`
}

export function corePath (resource: 'pods' | 'secrets' | 'nodes' | 'events', namespace?: string): string {
  return namespace != null && namespace !== '' ? `/api/v1/namespaces/${namespace}/${resource}` : `/api/v1/${resource}`
}
