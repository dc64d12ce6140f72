/**
 * The objects the operator owns, as server-side-apply intents: a relay pod per
 * slot and an identity Secret per slot. Everything here is pure.
 */
import { createHash } from 'node:crypto'
import type { V1Affinity, V1ConfigMap, V1Container, V1EnvVar, V1Pod, V1PodSecurityContext, V1Secret, V1SecurityContext, V1Volume, V1VolumeMount } from '@kubernetes/client-node'
import {
  ANNOTATIONS, API_VERSION, APP_NAME, COMPONENT_IDENTITY, COMPONENT_LIMITS, COMPONENT_RELAY, LIMITS_DIR, LIMITS_KEY, CONFIG_DIR, CONFIG_KEY, DEFAULT_DRAIN_SECONDS,
  API_URL_KEY, DEFAULT_HOST_PORT, FIELD_MANAGER, KIND, LABELS, P2P_SECRET_KEY, REDIS_URL_KEY, RELAY_CONTAINER_PORT, RELAY_METRICS_PORT,
  TICKET_KEYS_DIR, TICKET_KEYS_KEY, TIERS_DIR, TIERS_KEY, type RelayPool, type SecretKeyRef
} from './api.js'
import { RELAY_SETTINGS } from './generated/relay-settings.js'
import { transportAddr } from './nodes.js'

/** the discovery id of a slot's relay: `<namespace>:<pool>:<slot>` (the discovery API allows letters, digits and . _ : -) */
export function registryId (namespace: string, pool: string, slot: number): string {
  return `${namespace}:${pool}:${slot}`
}

export function podName (pool: string, slot: number): string { return `${pool}-${slot}` }
export function secretName (pool: string, slot: number): string { return `${pool}-${slot}-identity` }
export function limitsConfigMapName (pool: string): string { return `${pool}-limits` }

/** JSON with sorted keys, so equal objects hash equally */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']'
  if (value != null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return '{' + entries.map(([k, v]) => JSON.stringify(k) + ':' + canonicalJson(v)).join(',') + '}'
  }
  return JSON.stringify(value)
}

export function hashOf (value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 16)
}

export function ownerReference (pool: RelayPool): NonNullable<V1Pod['metadata']>['ownerReferences'] {
  return [{ apiVersion: API_VERSION, kind: KIND, name: pool.metadata.name, uid: pool.metadata.uid ?? '', controller: true, blockOwnerDeletion: true }]
}

export function relayLabels (pool: RelayPool, slot: number): Record<string, string> {
  return {
    [LABELS.name]: APP_NAME,
    [LABELS.component]: COMPONENT_RELAY,
    [LABELS.instance]: pool.metadata.name,
    [LABELS.managedBy]: FIELD_MANAGER,
    [LABELS.pool]: pool.metadata.name,
    [LABELS.slot]: String(slot)
  }
}

/**
 * The relay pod's default securityContext: a fixed non-root uid the image is built for. Restricted
 * policies that assign the uid themselves (OpenShift's restricted SCC) refuse a fixed one: the
 * operator's --relay-pod-security-context replaces this (the chart's relayPods.podSecurityContext).
 */
export const RELAY_POD_SECURITY_CONTEXT: V1PodSecurityContext = Object.freeze({ runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } })
/** the relay container's default securityContext (the image writes only under /tmp) */
export const RELAY_CONTAINER_SECURITY_CONTEXT: V1SecurityContext = Object.freeze({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } })

export interface PodInput {
  pool: RelayPool
  slot: number
  node: string
  publicAddress: string
  image: string
  imagePullPolicy: string
  /** the relay pod's securityContext (default RELAY_POD_SECURITY_CONTEXT) */
  podSecurityContext?: V1PodSecurityContext
  /** the relay container's securityContext (default RELAY_CONTAINER_SECURITY_CONTEXT) */
  containerSecurityContext?: V1SecurityContext
  /**
   * false: no prometheus.io/* scrape annotations (a PodMonitor scrapes the relays instead; with
   * both, an annotation-based Prometheus job and the PodMonitor would scrape every relay twice)
   */
  scrapeAnnotations?: boolean
  /** peer id of the slot's key, when known: recorded on the pod (not part of the template hash) */
  peerId?: string
}

/**
 * Node affinity pinning the pod to `node` (the DaemonSet controller's way):
 * the scheduler still checks ports, resources and taints, and reports
 * "didn't have free ports" when the hostPort is taken. The pool's own required
 * node terms were already evaluated when the node was chosen, so the pin
 * replaces them; preferred terms and pod (anti-)affinity are kept.
 */
export function pinnedAffinity (affinity: V1Affinity | undefined, node: string): V1Affinity {
  const out: V1Affinity = structuredClone(affinity ?? {})
  out.nodeAffinity = {
    ...(out.nodeAffinity ?? {}),
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }]
    }
  }
  return out
}

export function relayArgs (pool: RelayPool, publicAddress: string): string[] {
  const spec = pool.spec
  const hostPort = spec.hostPort ?? DEFAULT_HOST_PORT
  const args = [
    'run',
    '--config', `${CONFIG_DIR}/${CONFIG_KEY}`,
    '--announce', transportAddr(publicAddress, hostPort),
    '--port', String(RELAY_CONTAINER_PORT),
    '--metrics-port', String(RELAY_METRICS_PORT)
  ]
  // only what the user set (or the CRD defaults): an absent flag leaves the
  // relay's own default, so the relay stays the one place that knows its defaults.
  // Reloadable settings go into the limits ConfigMap instead (buildLimitsConfigMap):
  // outside the pod template, so changing one restarts no relay
  for (const setting of RELAY_SETTINGS) {
    if (setting.reloadable) continue
    const value = setting.value(spec) ?? setting.default
    if (value != null) args.push(setting.flag, String(value))
  }
  args.push('--limits-file', `${LIMITS_DIR}/${LIMITS_KEY}`)
  // the operator creates and removes the pool's registry entries; a relay that
  // can reach discovery only keeps its own entry alive (docs/registry.md)
  if (spec.discovery?.p2pSecretRef != null) args.push('--refresh-only')
  return args
}

/**
 * The relay's limits file: the reloadable settings the pool sets, in the relay
 * config's shape ({"limits": {...}, "rate_limits": {...}}). Unset ones are left
 * out, so the relay keeps its own default.
 */
export function relayLimitsFile (pool: RelayPool): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = { limits: {}, rate_limits: {} }
  for (const setting of RELAY_SETTINGS) {
    if (!setting.reloadable) continue
    const value = setting.value(pool.spec) ?? setting.default
    const [section, key] = setting.config.split('.') as [string, string]
    if (value != null) (out[section] ??= {})[key] = value
  }
  return out
}

/**
 * The pool's limits ConfigMap, mounted into every relay pod and read by the relay
 * every 10 s (`--limits-file`). Only its name is in the pod: a change to its data
 * leaves the template hash, and so the pods, as they are; the kubelet refreshes the
 * mounted file (within its sync period, about a minute) and the relay applies it.
 */
export function buildLimitsConfigMap (pool: RelayPool): V1ConfigMap {
  const name = pool.metadata.name
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: limitsConfigMapName(name),
      namespace: pool.metadata.namespace ?? 'default',
      labels: { [LABELS.name]: APP_NAME, [LABELS.component]: COMPONENT_LIMITS, [LABELS.instance]: name, [LABELS.managedBy]: FIELD_MANAGER, [LABELS.pool]: name },
      ownerReferences: ownerReference(pool)
    },
    data: { [LIMITS_KEY]: canonicalJson(relayLimitsFile(pool)) + '\n' }
  }
}

/**
 * The relay container's environment. The Redis URL of shared rate limits is
 * passed as REDIS_URL (read by `pos-relay run --redis`) straight from its
 * Secret, never as an argument: the URL carries the Redis password, and
 * arguments are visible in the pod spec and in `ps`. Likewise the p2p secret
 * and the discovery URL of spec.discovery.p2pSecretRef.
 */
export function relayEnv (pool: RelayPool): V1EnvVar[] {
  const spec = pool.spec
  const env: V1EnvVar[] = [{ name: 'POS_RELAY_LOG_LEVEL', value: spec.logLevel ?? 'info' }]
  const ref = rateLimitRedisRef(pool)
  if (ref != null) env.push({ name: 'POS_RELAY_RATE_LIMIT_REDIS_URL', valueFrom: { secretKeyRef: { name: ref.name, key: ref.key ?? REDIS_URL_KEY } } })
  const p2p = spec.discovery?.p2pSecretRef
  if (p2p != null) {
    // the p2p secret and the discovery URL come from the pool's Secret, never
    // through the slot's identity Secret (immutable, and holding only the key)
    env.push({ name: RELAY_P2P_SECRET_ENV, valueFrom: { secretKeyRef: { name: p2p.name, key: p2p.key ?? P2P_SECRET_KEY } } })
    // optional: without the URL the relay runs without self-refresh, as before p2pSecretRef was honoured
    env.push({ name: RELAY_API_URL_ENV, valueFrom: { secretKeyRef: { name: p2p.name, key: p2p.apiUrlKey ?? API_URL_KEY, optional: true } } })
  }
  return env
}

/**
 * What spec.auth adds to a relay pod when tickets are required: environment
 * (--auth, the accounts Redis from its Secret, the ticket keys URL or the
 * mounted public JWKS, the mounted tiers) and the volumes it names. Nothing
 * when auth is absent or not required, so pools without it keep their pods.
 * File names inside the mounts are fixed (items), whatever the Secret's key.
 */
export function relayAuth (pool: RelayPool): { env: V1EnvVar[], volumes: V1Volume[], mounts: V1VolumeMount[] } {
  const auth = pool.spec.auth
  const out = { env: [] as V1EnvVar[], volumes: [] as V1Volume[], mounts: [] as V1VolumeMount[] }
  if (auth?.required !== true) return out
  out.env.push({ name: 'POS_RELAY_AUTH', value: 'true' })
  const redis = authRedisRef(pool)
  if (redis != null) out.env.push({ name: 'POS_RELAY_AUTH_REDIS_URL', valueFrom: { secretKeyRef: { name: redis.name, key: redis.key ?? REDIS_URL_KEY } } })
  if (auth.ticketKeysUrl != null) out.env.push({ name: 'POS_RELAY_TICKET_KEYS_URL', value: auth.ticketKeysUrl })
  const keys = auth.ticketKeysSecretRef
  if (keys != null) {
    out.volumes.push({ name: 'ticket-keys', secret: { secretName: keys.name, defaultMode: 0o440, items: [{ key: keys.key ?? TICKET_KEYS_KEY, path: TICKET_KEYS_KEY }] } })
    out.mounts.push({ name: 'ticket-keys', mountPath: TICKET_KEYS_DIR, readOnly: true })
    out.env.push({ name: 'POS_RELAY_TICKET_KEYS_PUBLIC_FILE', value: `${TICKET_KEYS_DIR}/${TICKET_KEYS_KEY}` })
  }
  const tiers = auth.tiersConfigMapRef
  if (tiers != null) {
    out.volumes.push({ name: 'tiers', configMap: { name: tiers.name, defaultMode: 0o444, items: [{ key: tiers.key ?? TIERS_KEY, path: TIERS_KEY }] } })
    out.mounts.push({ name: 'tiers', mountPath: TIERS_DIR, readOnly: true })
    out.env.push({ name: 'POS_RELAY_TIERS_FILE', value: `${TIERS_DIR}/${TIERS_KEY}` })
  }
  return out
}

/** the Secret key of the accounts Redis (revocations, metering, quotas): spec.auth.redisSecretRef, else the registry's */
export function authRedisRef (pool: RelayPool): SecretKeyRef | undefined {
  return pool.spec.auth?.redisSecretRef ?? pool.spec.discovery?.redisUrlSecretRef
}

/** env vars of `pos-relay run`: the p2p secret (env only) and the discovery URL (--api-url) */
export const RELAY_P2P_SECRET_ENV = 'POS_RELAY_P2P_SECRET'
export const RELAY_API_URL_ENV = 'POS_RELAY_API_URL'

/** the Secret key of the Redis shared rate limits use, when `rateLimits.shared` is on */
export function rateLimitRedisRef (pool: RelayPool): SecretKeyRef | undefined {
  const r = pool.spec.rateLimits
  if (r?.shared !== true) return undefined
  // the discovery registry's Redis unless the pool names another one
  return r.redisUrlSecretRef ?? pool.spec.discovery?.redisUrlSecretRef
}

/**
 * A not-Ready relay pod is deregistered from discovery, so one slow answer
 * must not count: with a 1 s timeout and failureThreshold 1 a single probe
 * delayed by a GC pause or a busy event loop delisted a healthy relay within
 * 2 s. A probe now has 3 s to answer, and it takes 3 failures in a row (15 s)
 * to delist: a hung relay still leaves within ~18 s, and its own TTL
 * registration lapses too. Draining is not slowed by this: a terminating pod
 * is deregistered at once, whatever its probe says.
 */
export const RELAY_READINESS_PROBE = { httpGet: { path: '/readyz', port: 'metrics' as any }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3, successThreshold: 1 }

/** The full pod intent; its template-hash annotation covers everything else in it. */
export function buildPod (input: PodInput): V1Pod {
  const { pool, slot, node, publicAddress } = input
  const spec = pool.spec
  const namespace = pool.metadata.namespace ?? 'default'
  const hostPort = spec.hostPort ?? DEFAULT_HOST_PORT
  const drain = spec.drainSeconds ?? DEFAULT_DRAIN_SECONDS
  const auth = relayAuth(pool)
  const container: V1Container = {
    name: 'relay',
    image: input.image,
    imagePullPolicy: input.imagePullPolicy,
    args: relayArgs(pool, publicAddress),
    env: [...relayEnv(pool), ...auth.env],
    ports: [
      { name: 'relay', containerPort: RELAY_CONTAINER_PORT, hostPort, protocol: 'TCP' },
      { name: 'metrics', containerPort: RELAY_METRICS_PORT, protocol: 'TCP' },
      // the relay serves QUIC on the same port number over UDP and announces it as the twin of its TCP address
      { name: 'relay-quic', containerPort: RELAY_CONTAINER_PORT, hostPort, protocol: 'UDP' }
    ],
    readinessProbe: RELAY_READINESS_PROBE,
    livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' as any }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 },
    // the image runs with a read-only root filesystem and writes only under /tmp
    volumeMounts: [{ name: 'identity', mountPath: CONFIG_DIR, readOnly: true }, { name: 'tmp', mountPath: '/tmp' }, { name: 'limits', mountPath: LIMITS_DIR, readOnly: true }, ...auth.mounts],
    securityContext: input.containerSecurityContext ?? RELAY_CONTAINER_SECURITY_CONTEXT
  }
  if (spec.resources != null) container.resources = spec.resources
  const labels = { ...(spec.podLabels ?? {}), ...relayLabels(pool, slot) }
  const annotations: Record<string, string> = {
    ...(input.scrapeAnnotations !== false ? { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(RELAY_METRICS_PORT), 'prometheus.io/path': '/metrics' } : {}),
    ...(spec.podAnnotations ?? {}),
    [ANNOTATIONS.node]: node,
    [ANNOTATIONS.publicAddress]: publicAddress
  }
  const pod: V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: podName(pool.metadata.name, slot), namespace, labels, annotations, ownerReferences: ownerReference(pool) },
    spec: {
      affinity: pinnedAffinity(spec.affinity, node),
      ...(spec.nodeSelector != null ? { nodeSelector: spec.nodeSelector } : {}),
      ...(spec.tolerations != null ? { tolerations: spec.tolerations } : {}),
      ...(spec.imagePullSecrets != null ? { imagePullSecrets: spec.imagePullSecrets } : {}),
      ...(spec.priorityClassName != null ? { priorityClassName: spec.priorityClassName } : {}),
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: drain + 15,
      securityContext: input.podSecurityContext ?? RELAY_POD_SECURITY_CONTEXT,
      containers: [container],
      volumes: [
        { name: 'identity', secret: { secretName: secretName(pool.metadata.name, slot), defaultMode: 0o440, items: [{ key: CONFIG_KEY, path: CONFIG_KEY }] } },
        { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
        // by name only (no subPath, which the kubelet never refreshes): its data is not part of the template hash
        { name: 'limits', configMap: { name: limitsConfigMapName(pool.metadata.name), defaultMode: 0o444, items: [{ key: LIMITS_KEY, path: LIMITS_KEY }] } },
        ...auth.volumes
      ]
    }
  }
  pod.metadata!.annotations![ANNOTATIONS.templateHash] = hashOf(pod)
  // which key the relay was started with: registration uses it, and a pod whose
  // key differs from its Secret's (the Secret was replaced) is rolled
  if (input.peerId != null && input.peerId !== '') pod.metadata!.annotations![ANNOTATIONS.peerId] = input.peerId
  return pod
}

/** identity Secret intent without its data (the key is generated once, by the applier) */
export function buildSecretMeta (pool: RelayPool, slot: number, node: string | undefined): V1Secret {
  const annotations: Record<string, string> = {}
  if (node != null) annotations[ANNOTATIONS.node] = node
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: secretName(pool.metadata.name, slot),
      namespace: pool.metadata.namespace ?? 'default',
      labels: { ...relayLabels(pool, slot), [LABELS.component]: COMPONENT_IDENTITY },
      annotations,
      ownerReferences: ownerReference(pool)
    },
    type: 'Opaque',
    immutable: true
  }
}
