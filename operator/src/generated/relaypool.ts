// Generated from operator/src/schema/relaypool.ts by `npm run generate:crd`: do not edit.
// The RelayPool API (pos-relay.io/v1alpha1) as TypeScript: what the API server stores, defaults already applied.
import type { V1Affinity, V1LocalObjectReference, V1ResourceRequirements, V1Toleration } from '@kubernetes/client-node'

/** Desired state of the pool. */
export interface RelayPoolSpec {
  /** Number of relays. At most one relay runs per node (they share the hostPort), so replicas above the number of eligible nodes leave relays unscheduled and set the HostPortConflict condition. Mutually exclusive with perNode. `kubectl scale rp NAME --replicas N` sets it (scale subresource). Range: 0–1000. */
  replicas?: number
  /** true: run one relay on every eligible node (matching nodeSelector, tolerations and affinity). Mutually exclusive with replicas. */
  perNode?: boolean
  /** Node labels a node must carry to run a relay (as in a Pod). */
  nodeSelector?: Record<string, string>
  /** Tolerations of the relay pods (core/v1 Toleration). */
  tolerations?: V1Toleration[]
  /** Affinity of the relay pods (core/v1 Affinity: nodeAffinity, podAffinity, podAntiAffinity), copied into each pod and validated by the API server when the pod is created. */
  affinity?: V1Affinity
  /** Relay container image. Default: the operator's own image (the chart passes it as RELAY_IMAGE), which contains the relay. */
  image?: string
  /** Pull policy of the relay container; default IfNotPresent. */
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never'
  imagePullSecrets?: V1LocalObjectReference[]
  /** TCP port on the node where peers reach the relay (default 7373). The container itself always listens on 7373; the node port maps to it. Range: 1–65535. Default: 7373. */
  hostPort?: number
  /** Compute resources of the relay container (core/v1 ResourceRequirements). */
  resources?: V1ResourceRequirements
  /** Per-relay limits, passed to each relay (config file `limits.*`, env MAX_RESERVATIONS etc.). Unset fields keep the relay's defaults. */
  limits?: RelayLimits
  /** Rate limits of every relay of the pool (relay config `rate_limits.*`, passed as flags). Unset fields keep the relay's defaults. With shared: true the counts are kept in Redis and so hold across the pool's relays (and every relay using the same Redis) instead of per relay. */
  rateLimits?: RelayRateLimits
  /** The discovery registry the pool's Ready relays are registered in. Secrets are read from the RelayPool's namespace. */
  discovery: DiscoverySpec
  /** Account tickets on the pool's relays (`pos-relay run --auth`): with required: true a peer must present a valid ticket (issued by discovery for an account) before it may reserve or open a circuit, its bytes are metered per account, and revocations and quotas end its circuits. Secrets and ConfigMaps are read from the RelayPool's namespace. */
  auth?: AuthSpec
  /** How relays are replaced when the pod template changes (image, limits, anything rendered into the pod). Relays share a hostPort, so a new relay can only start on a node after the old one is gone: the operator deletes outdated Ready relays, at most maxUnavailable unavailable at a time (relays already not Ready count against it), and creates each replacement on the same node. */
  updateStrategy?: RelayPoolUpdateStrategy
  /** After a relay pod is told to stop, how long open circuits may keep running (the relay's drain_seconds). The pod's terminationGracePeriodSeconds is drainSeconds plus a margin. Range: 0–3600. Default: 30. */
  drainSeconds?: number
  /** How each relay's public address is chosen. Default: the Node's ExternalIP, else its InternalIP. */
  publicAddress?: PublicAddressSpec
  /** Extra labels for the relay pods (the operator's own labels win). */
  podLabels?: Record<string, string>
  /** Extra annotations for the relay pods. */
  podAnnotations?: Record<string, string>
  /** PriorityClass of the relay pods. */
  priorityClassName?: string
  /** Log level of the relays (default info). */
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
}

/** Per-relay limits, passed to each relay (config file `limits.*`, env MAX_RESERVATIONS etc.). Unset fields keep the relay's defaults. */
export interface RelayLimits {
  /** Reservations held at once (relay default 4096). Range: 1–1000000. */
  maxReservations?: number
  /** Reservation lifetime; clients refresh before it ends (relay default 3600). Range: 30–86400. */
  reservationTtlSeconds?: number
  /** Circuits relayed at once (relay default 1024). Range: 1–1000000. */
  maxCircuits?: number
  /** Bytes per circuit, both directions together; 0 = unlimited (relay default 4 GiB). Range: 0 or 65536–1099511627776. */
  circuitDataLimitBytes?: number
  /** Seconds per circuit; 0 = unlimited (relay default 3600). Range: 0 or 10–86400. */
  circuitDurationSeconds?: number
  /** Connections at once; 0 = maxReservations + 2 × maxCircuits + 256 (relay default 0). Range: 0–10000000. */
  maxConnections?: number
  /** Connections still in their Noise/Yamux handshake at once; when full, the oldest handshake of the busiest address is evicted (relay default 256). Range: 1–100000. */
  maxPendingConnections?: number
  /** Seconds a new connection has to finish its handshake (relay default 5). Range: 1–120. */
  handshakeTimeoutSeconds?: number
  /** Connections at once from one IP address, on each relay; 0 = unlimited (relay default 64). Range: 0–1000000. */
  ipMaxConnections?: number
  /** Circuits at once from one source peer, on each relay; 0 = unlimited (relay default 16). Range: 0–1000000. */
  peerMaxCircuits?: number
  /** Circuits at once from one source IP address, on each relay; 0 = unlimited (relay default 64). Range: 0–1000000. */
  ipMaxCircuits?: number
  /** Seconds without a byte in either direction after which a circuit is closed; 0 = never (relay default 300). Range: 0 or 10–86400. */
  circuitIdleTimeoutSeconds?: number
  /** Bytes buffered in all circuits of a relay together; at it the circuits stop reading and new circuits are refused; 0 = unlimited (relay default 256 MiB). Range: 0 or 16777216–1099511627776. */
  maxBufferedBytes?: number
}

/** Rate limits of every relay of the pool (relay config `rate_limits.*`, passed as flags). Unset fields keep the relay's defaults. With shared: true the counts are kept in Redis and so hold across the pool's relays (and every relay using the same Redis) instead of per relay. */
export interface RelayRateLimits {
  /** true: the relays count against shared limits in Redis (each relay gets the URL as REDIS_URL from redisUrlSecretRef, default spec.discovery.redisUrlSecretRef); while Redis is unreachable each relay limits alone. Unset or false: each relay limits alone (relay default). */
  shared?: boolean
  /** Secret key (in the pool's namespace) holding the Redis URL for shared rate limits, when it is not the discovery registry's (spec.discovery.redisUrlSecretRef). Needs shared: true. */
  redisUrlSecretRef?: SecretKeyRef
  /** New connections per second per source IP, checked before the handshake; 0 = off (relay default 20). Range: 0–100000. */
  ipConnectionsPerSecond?: number
  /** Reservations per minute per peer; 0 = off (relay default 30). Range: 0–100000. */
  peerReservationsPerMinute?: number
  /** Circuits per minute per source peer; 0 = off (relay default 120). Range: 0–100000. */
  peerCircuitsPerMinute?: number
}

/** Secret key (in the pool's namespace) holding the Redis URL for shared rate limits, when it is not the discovery registry's (spec.discovery.redisUrlSecretRef). Needs shared: true. */
export interface SecretKeyRef {
  name: string
  /** Default: "redis-url". */
  key?: string
}

/** The discovery registry the pool's Ready relays are registered in. Secrets are read from the RelayPool's namespace. */
export interface DiscoverySpec {
  /** Secret key holding the Redis URL of the discovery registry (redis://[user:password@]host:port[/db]). */
  redisUrlSecretRef: SecretKeyRef
  /** Secret holding the p2p secret relays use as the Bearer token towards the discovery API (the relay config's p2p_secret), and under apiUrlKey the discovery API URL. When set, each relay refreshes its own discovery entry (refresh-only: it never creates one), so the pool stays listed while the operator is down. */
  p2pSecretRef?: P2pSecretRef
  /** Seconds an entry stays listed after its last heartbeat (heartbeats every ttlSeconds/3). Same meaning as `pos-relay discovery --ttl`. Range: 3–3600. Default: 30. */
  ttlSeconds?: number
}

/** Secret holding the p2p secret relays use as the Bearer token towards the discovery API (the relay config's p2p_secret), and under apiUrlKey the discovery API URL. When set, each relay refreshes its own discovery entry (refresh-only: it never creates one), so the pool stays listed while the operator is down. */
export interface P2pSecretRef {
  name: string
  /** Default: "p2p-secret". */
  key?: string
  /** Key of the same Secret holding the discovery API base URL (http(s)://host:port); a relay without it does not refresh its entry. Default: "api-url". */
  apiUrlKey?: string
}

/** Account tickets on the pool's relays (`pos-relay run --auth`): with required: true a peer must present a valid ticket (issued by discovery for an account) before it may reserve or open a circuit, its bytes are metered per account, and revocations and quotas end its circuits. Secrets and ConfigMaps are read from the RelayPool's namespace. */
export interface AuthSpec {
  /** true: every relay of the pool runs with --auth and refuses peers without a valid account ticket. false: the other auth fields are kept but unused (anyone may reserve). */
  required: boolean
  /** Secret key holding a PUBLIC JWKS ({"keys": [...]} of Ed25519 public keys, as `pos-relay keys public` prints it) of the ticket keys, for relays that verify tickets with keys configured offline. Default (unset): the relays fetch the JWKS from the discovery API of spec.discovery.p2pSecretRef (<api_url>/api/p2p/ticket-keys). A Secret holding a private key (a JWK with "d") is refused: no relay is created or changed, and the pool reports Degraded=True AuthSecretInvalid. */
  ticketKeysSecretRef?: SecretKeyRef
  /** URL of the ticket keys JWKS (http or https), when it is not <api_url>/api/p2p/ticket-keys of the discovery in spec.discovery.p2pSecretRef. */
  ticketKeysUrl?: string
  /** Secret key holding the Redis URL for revocations, metering (usage per account), monthly quotas and per-account reservation counts; every relay of every pool using the same Redis shares them. Default: spec.discovery.redisUrlSecretRef (the registry's Redis, which in the chart is the Redis discovery keeps accounts in). */
  redisSecretRef?: SecretKeyRef
  /** ConfigMap key holding the tiers (JSON, the format of `pos-relay discovery --tiers-file`): per-tier reservations, circuit data and duration limits and monthly bytes. Must match discovery's tiers. Default: the relay's built-in tiers (free, pro, unlimited). */
  tiersConfigMapRef?: ConfigMapKeyRef
  /** Circuits per minute per account, across the fleet when the relays share Redis; 0 = off (relay default 0). Range: 0–1000000. */
  accountCircuitsPerMinute?: number
  /** Seconds between usage flushes to Redis; a crashed relay loses at most this much metering (relay default 5). Range: 1–300. */
  meteringIntervalSeconds?: number
}

/** ConfigMap key holding the tiers (JSON, the format of `pos-relay discovery --tiers-file`): per-tier reservations, circuit data and duration limits and monthly bytes. Must match discovery's tiers. Default: the relay's built-in tiers (free, pro, unlimited). */
export interface ConfigMapKeyRef {
  name: string
  /** Default: "tiers.json". */
  key?: string
}

/** How relays are replaced when the pod template changes (image, limits, anything rendered into the pod). Relays share a hostPort, so a new relay can only start on a node after the old one is gone: the operator deletes outdated Ready relays, at most maxUnavailable unavailable at a time (relays already not Ready count against it), and creates each replacement on the same node. */
export interface RelayPoolUpdateStrategy {
  /** Relays that may be unavailable during a rollout: a number (at least 1) or a percentage of the desired relays ("25%", rounded down, at least 1). Default 1. Default: 1. */
  maxUnavailable?: number | string
}

/** How each relay's public address is chosen. Default: the Node's ExternalIP, else its InternalIP. */
export interface PublicAddressSpec {
  /** Node status address types to use, in order of preference (default [ExternalIP, InternalIP]). */
  nodeAddressTypes?: Array<NodeAddressType>
  /** Name of a Node annotation whose value (an IP address or DNS name) wins over the node's status addresses when present, e.g. pos-relay.io/public-address. */
  nodeAnnotation?: string
  /** One fixed IP address or DNS name for the relay (only with replicas 0 or 1). */
  static?: string
}

export type NodeAddressType = 'ExternalIP' | 'InternalIP' | 'ExternalDNS' | 'InternalDNS' | 'Hostname'

/** Observed state, written by the operator. */
export interface RelayPoolStatus {
  /** metadata.generation of the spec this status describes. */
  observedGeneration?: number
  /** Relay pods of the pool that are not terminating (the scale subresource's current replicas). */
  replicas?: number
  /** Label selector of the pool's relay pods, as a string (the scale subresource's selector, used by HorizontalPodAutoscalers). */
  selector?: string
  /** Relays the pool should run now. */
  desiredRelays?: number
  /** Relays whose pod is Ready. */
  readyRelays?: number
  /** Relays currently listed in the discovery registry. */
  registeredRelays?: number
  /** Ready, Progressing, Degraded and HostPortConflict (metav1.Condition; lastTransitionTime changes only when status flips). */
  conditions?: Array<Condition>
  /** One entry per relay pod of the pool. */
  relays?: Array<RelayStatus>
}

export interface Condition {
  type: string
  status: ConditionStatus
  /** Range: ≥ 0. */
  observedGeneration?: number
  lastTransitionTime: string
  reason: string
  message: string
}

export type ConditionStatus = 'True' | 'False' | 'Unknown'

export interface RelayStatus {
  /** Pod name. */
  pod: string
  /** Identity slot (the Secret holding this slot's relay key). */
  slot?: number
  /** Node the pod is bound to (empty while unscheduled). */
  node?: string
  /** IP address or DNS name peers dial (with the hostPort). */
  publicAddress?: string
  /** libp2p peer id of the relay (12D3KooW...). */
  peerId?: string
  /** Full address, e.g. /ip4/203.0.113.7/tcp/7373/p2p/12D3KooW... */
  multiaddr?: string
  /** The pod is Ready. */
  ready?: boolean
  /** The relay is listed in the discovery registry. */
  registered?: boolean
  /** Short state, e.g. Pending, Unschedulable, Running, Draining. */
  phase?: string
}
