/**
 * The RelayPool API as documented in crds/README.md (group pos-relay.io,
 * version v1alpha1), plus the Kubernetes object shapes the operator reads.
 *
 * Objects are kept as plain JSON exactly as the API server sends them (no
 * class instances, timestamps stay strings), so what the operator observes can
 * be compared with what it wants without conversions.
 */
import type { V1ConfigMap, V1Node, V1Pod, V1Secret } from '@kubernetes/client-node'
import type { RelayPoolSpec, RelayPoolStatus } from './generated/relaypool.js'

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
/** default keys of the Secret spec.discovery.p2pSecretRef names */
export const P2P_SECRET_KEY = 'p2p-secret'
export const API_URL_KEY = 'api-url'
/** default key of spec.auth.ticketKeysSecretRef (a public JWKS) and spec.auth.tiersConfigMapRef */
export const TICKET_KEYS_KEY = 'jwks.json'
export const TIERS_KEY = 'tiers.json'
/** where spec.auth's ticket keys Secret and tiers ConfigMap are mounted in the relay pod (outside CONFIG_DIR: no nested mounts) */
export const TICKET_KEYS_DIR = '/var/run/pos-relay/ticket-keys'
export const TIERS_DIR = '/var/run/pos-relay/tiers'
/** where the pool's limits ConfigMap is mounted (the relay's --limits-file); the kubelet refreshes it in place */
export const LIMITS_DIR = '/var/run/pos-relay/limits'
export const LIMITS_KEY = 'limits.json'

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
export const COMPONENT_LIMITS = 'relay-limits'
/** label selector of every pod and Secret the operator manages */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${FIELD_MANAGER},${LABELS.pool}`

// the spec and status types are generated from the schema (src/schema/relaypool.ts)
export type {
  Condition, ConditionStatus, DiscoverySpec, NodeAddressType, P2pSecretRef, PublicAddressSpec, RelayLimits, RelayPoolSpec,
  RelayPoolStatus, RelayRateLimits, RelayStatus, SecretKeyRef
} from './generated/relaypool.js'

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
export type ConfigMap = V1ConfigMap & { metadata: ObjectMeta }

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

export function corePath (resource: 'pods' | 'secrets' | 'configmaps' | 'nodes' | 'events', namespace?: string): string {
  return namespace != null && namespace !== '' ? `/api/v1/namespaces/${namespace}/${resource}` : `/api/v1/${resource}`
}
