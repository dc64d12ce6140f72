/**
 * The RelayPool API (pos-relay.io/v1alpha1): the one source of the CRD YAML
 * (crds/ and the chart's copy), the TypeScript types (src/generated/relaypool.ts),
 * the relay flag table (src/generated/relay-settings.ts) and the field tables
 * of crds/README.md (spec.limits and spec.rateLimits in relay-limits.ts). Edit here,
 * then `npm run generate:crd`;
 * operator/test/generated.test.ts fails while a generated file differs.
 */
import { int32, int64, intSetting, secretKeyRef, stringMap, type CrdSource, type Prop } from './define.js'
import { limits, rateLimits } from './relay-limits.js'

const QUANTITY: Prop = {
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  pattern: '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$',
  intOrString: true
}

const discovery: Prop = {
  type: 'object',
  tsName: 'DiscoverySpec',
  description: 'The discovery registry the pool\'s Ready relays are registered in. Secrets are read from the RelayPool\'s namespace.',
  required: ['redisUrlSecretRef'],
  doc: { hide: true },
  properties: {
    redisUrlSecretRef: {
      ...secretKeyRef('Secret key holding the Redis URL of the discovery registry (redis://[user:password@]host:port[/db]).', 'redis-url'),
      doc: { type: '`{name, key}` (key default `redis-url`)', default: '**required**', text: 'Secret (in the pool\'s namespace) holding the Redis URL of the discovery registry', leaf: true }
    },
    p2pSecretRef: {
      ...secretKeyRef('Secret holding the p2p secret relays use as the Bearer token towards the discovery API (the relay config\'s p2p_secret), and under apiUrlKey the discovery API URL. When set, each relay refreshes its own discovery entry (refresh-only: it never creates one), so the pool stays listed while the operator is down.', 'p2p-secret', {
        apiUrlKey: { type: 'string', default: 'api-url', minLength: 1, maxLength: 253, description: 'Key of the same Secret holding the discovery API base URL (http(s)://host:port); a relay without it does not refresh its entry.' }
      }),
      tsName: 'P2pSecretRef',
      doc: {
        type: '`{name, key, apiUrlKey}` (key default `p2p-secret`, apiUrlKey default `api-url`)',
        text: 'Secret holding the p2p secret (the relay config\'s `p2p_secret`, Bearer token of `POST /api/p2p/relays`) and the discovery API URL. When set, each relay gets both through `valueFrom.secretKeyRef` (env `POS_RELAY_P2P_SECRET` and `API_URL`, never in the pod spec) and runs `pos-relay run --refresh-only`: it refreshes the entry the operator created and never creates one (docs/registry.md), so its relays stay listed through an operator outage. A missing `apiUrlKey` leaves the relay without self-refresh.',
        leaf: true
      }
    },
    ttlSeconds: int32('Seconds an entry stays listed after its last heartbeat (heartbeats every ttlSeconds/3). Same meaning as `pos-relay discovery --ttl`.', {
      default: 30,
      minimum: 3,
      maximum: 3600,
      doc: { type: 'int', default: '**30**', text: 'registry TTL; heartbeats every ttl/3' }
    })
  }
}

const auth: Prop = {
  type: 'object',
  tsName: 'AuthSpec',
  description: 'Account tickets on the pool\'s relays (`pos-relay run --auth`): with required: true a peer must present a valid ticket (issued by discovery for an account) before it may reserve or open a circuit, its bytes are metered per account, and revocations and quotas end its circuits. Secrets and ConfigMaps are read from the RelayPool\'s namespace.',
  required: ['required'],
  doc: { hide: true },
  properties: {
    required: {
      type: 'boolean',
      description: 'true: every relay of the pool runs with --auth and refuses peers without a valid account ticket. false: the other auth fields are kept but unused (anyone may reserve).',
      doc: { default: '**required**', text: '`true`: relays run `--auth` (env `POS_RELAY_AUTH=true`): reservations and circuits need a valid ticket; a relay that knows no ticket key yet is not Ready (it would refuse everyone). `false`: open relays' }
    },
    ticketKeysSecretRef: {
      ...secretKeyRef('Secret key holding a PUBLIC JWKS ({"keys": [...]} of Ed25519 public keys, as `pos-relay keys public` prints it) of the ticket keys, for relays that verify tickets with keys configured offline. Default (unset): the relays fetch the JWKS from the discovery API of spec.discovery.p2pSecretRef (<api_url>/api/p2p/ticket-keys). A Secret holding a private key (a JWK with "d") is refused: no relay is created or changed, and the pool reports Degraded=True AuthSecretInvalid.', 'jwks.json'),
      doc: {
        type: '`{name, key}` (key default `jwks.json`)',
        default: '– (fetch `<api_url>/api/p2p/ticket-keys`)',
        text: 'Secret with a **public** JWKS (`pos-relay keys public`), mounted read-only into each relay and passed as `POS_RELAY_TICKET_KEYS_PUBLIC_FILE`; without `ticketKeysUrl` the relays then never fetch keys. Missing Secret or key, not a JWKS, or a private key (a JWK with `d`): `Degraded=True AuthSecretInvalid` and an Event, and no relay pod is created or changed',
        leaf: true
      }
    },
    ticketKeysUrl: {
      type: 'string',
      minLength: 1,
      maxLength: 2048,
      description: 'URL of the ticket keys JWKS (http or https), when it is not <api_url>/api/p2p/ticket-keys of the discovery in spec.discovery.p2pSecretRef.',
      rules: [{ rule: 'isURL(self) && (self.startsWith(\'http://\') || self.startsWith(\'https://\'))', message: 'spec.auth.ticketKeysUrl must be an http:// or https:// URL' }],
      doc: { default: '`<api_url>/api/p2p/ticket-keys`', text: 'JWKS URL (`POS_RELAY_TICKET_KEYS_URL`); with `ticketKeysSecretRef` too, a ticket verifies with a key of either' }
    },
    redisSecretRef: {
      ...secretKeyRef('Secret key holding the Redis URL for revocations, metering (usage per account), monthly quotas and per-account reservation counts; every relay of every pool using the same Redis shares them. Default: spec.discovery.redisUrlSecretRef (the registry\'s Redis, which in the chart is the Redis discovery keeps accounts in).', 'redis-url'),
      doc: {
        type: '`{name, key}` (key default `redis-url`)',
        default: '`discovery.redisUrlSecretRef`',
        text: 'Redis of accounts: revocations, usage, quotas (`POS_RELAY_AUTH_REDIS_URL` through `valueFrom.secretKeyRef`, never in the pod spec). Must be the Redis discovery keeps accounts in, or revocations and `pos-relay usage` do not see these relays. Missing Secret or key: `Degraded=True AuthSecretInvalid`, no relay created or changed',
        leaf: true
      }
    },
    tiersConfigMapRef: {
      type: 'object',
      tsName: 'ConfigMapKeyRef',
      description: 'ConfigMap key holding the tiers (JSON, the format of `pos-relay discovery --tiers-file`): per-tier reservations, circuit data and duration limits and monthly bytes. Must match discovery\'s tiers. Default: the relay\'s built-in tiers (free, pro, unlimited).',
      required: ['name'],
      properties: {
        name: { type: 'string', minLength: 1, maxLength: 253 },
        key: { type: 'string', default: 'tiers.json', minLength: 1, maxLength: 253 }
      },
      doc: {
        type: '`{name, key}` (key default `tiers.json`)',
        default: 'relay built-in tiers (free, pro, unlimited)',
        text: 'tiers JSON as for `pos-relay discovery --tiers-file`, mounted into each relay as `--tiers-file` (`POS_RELAY_TIERS_FILE`); keep it the same as discovery\'s. The operator reads it first (with the relay\'s own parser): a missing ConfigMap or key, or tiers the relays would refuse: `Degraded=True AuthSecretInvalid` naming the field, no relay created or changed',
        leaf: true
      }
    },
    accountCircuitsPerMinute: intSetting({ description: 'Circuits per minute per account, across the fleet when the relays share Redis; 0 = off (relay default 0).', range: [0, 1_000_000], default: '0 (off)', text: 'circuits per minute per account', flag: '--account-circuits-per-minute', config: 'rate_limits.account_circuits_per_minute', reloadable: true }),
    meteringIntervalSeconds: intSetting({ description: 'Seconds between usage flushes to Redis; a crashed relay loses at most this much metering (relay default 5).', range: [1, 300], default: '5', flag: '--metering-interval', config: 'auth.metering_interval_seconds' })
  }
}

const publicAddress: Prop = {
  type: 'object',
  tsName: 'PublicAddressSpec',
  description: 'How each relay\'s public address is chosen. Default: the Node\'s ExternalIP, else its InternalIP.',
  doc: { hide: true },
  properties: {
    nodeAddressTypes: {
      type: 'array',
      maxItems: 4,
      listType: 'set',
      description: 'Node status address types to use, in order of preference (default [ExternalIP, InternalIP]).',
      items: { type: 'string', enum: ['ExternalIP', 'InternalIP', 'ExternalDNS', 'InternalDNS', 'Hostname'], tsName: 'NodeAddressType' },
      doc: { type: 'enum[]', default: '`[ExternalIP, InternalIP]`', text: 'Node `status.addresses` types, in preference order' }
    },
    nodeAnnotation: {
      type: 'string',
      minLength: 1,
      maxLength: 317,
      description: 'Name of a Node annotation whose value (an IP address or DNS name) wins over the node\'s status addresses when present, e.g. pos-relay.io/public-address.',
      doc: { text: 'Node annotation whose value (IP or DNS name) wins, e.g. `pos-relay.io/public-address`' }
    },
    static: {
      type: 'string',
      minLength: 1,
      maxLength: 253,
      description: 'One fixed IP address or DNS name for the relay (only with replicas 0 or 1).',
      rules: [{ rule: 'isIP(self) || self.matches(\'^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$\')', message: 'publicAddress.static must be an IP address or a lower-case DNS name' }],
      doc: { text: 'one fixed IP/DNS name; only with `replicas` 0 or 1, and an IP or lower-case DNS name' }
    }
  }
}

const updateStrategy: Prop = {
  type: 'object',
  tsName: 'RelayPoolUpdateStrategy',
  description: 'How relays are replaced when the pod template changes (image, limits, anything rendered into the pod). Relays share a hostPort, so a new relay can only start on a node after the old one is gone: the operator deletes outdated Ready relays, at most maxUnavailable unavailable at a time (relays already not Ready count against it), and creates each replacement on the same node.',
  properties: {
    maxUnavailable: {
      anyOf: [{ type: 'integer' }, { type: 'string' }],
      intOrString: true,
      default: 1,
      description: 'Relays that may be unavailable during a rollout: a number (at least 1) or a percentage of the desired relays ("25%", rounded down, at least 1). Default 1.',
      rules: [{ rule: 'type(self) == int ? self >= 1 : self.matches(\'^[1-9][0-9]?%$|^100%$\')', message: 'spec.updateStrategy.maxUnavailable must be a number of relays (at least 1) or a percentage from 1% to 100%' }],
      doc: { type: 'int or `"N%"`', default: '**1**', text: 'outdated Ready relays replaced at once (relays not Ready count against it); a percentage of the desired relays rounds down, at least 1' }
    }
  }
}

const spec: Prop = {
  type: 'object',
  description: 'Desired state of the pool.',
  tsName: 'RelayPoolSpec',
  required: ['discovery'],
  rules: [
    { rule: 'has(self.replicas) != (has(self.perNode) && self.perNode)', message: 'set exactly one of spec.replicas (a fixed number of relays) or spec.perNode: true (one relay on every eligible node)' },
    { rule: '!(self.hostPort in [10250, 10255, 10256, 10257, 10259, 2379, 2380, 6443])', message: 'spec.hostPort must not be a port of the node\'s own Kubernetes services (kubelet 10250/10255, kube-proxy 10256, controller-manager 10257, scheduler 10259, etcd 2379/2380, apiserver 6443)' },
    { rule: '!(self.hostPort >= 30000 && self.hostPort <= 32767)', message: 'spec.hostPort must not be in the default Service NodePort range 30000-32767 (kube-proxy serves NodePorts on every node)' },
    { rule: '!has(self.publicAddress) || !has(self.publicAddress.static) || (has(self.replicas) && self.replicas <= 1)', message: 'spec.publicAddress.static gives every relay the same address, so it needs spec.replicas of 0 or 1; use publicAddress.nodeAnnotation for per-node addresses' },
    { rule: '!has(self.auth) || !self.auth.required || has(self.auth.ticketKeysSecretRef) || has(self.auth.ticketKeysUrl) || has(self.discovery.p2pSecretRef)', message: 'spec.auth.required needs the ticket keys: set spec.discovery.p2pSecretRef (the relays fetch <api_url>/api/p2p/ticket-keys from that discovery), spec.auth.ticketKeysUrl, or spec.auth.ticketKeysSecretRef (a public JWKS)' }
  ],
  properties: {
    replicas: int32('Number of relays. At most one relay runs per node (they share the hostPort), so replicas above the number of eligible nodes leave relays unscheduled and set the HostPortConflict condition. Mutually exclusive with perNode. `kubectl scale rp NAME --replicas N` sets it (scale subresource).', {
      minimum: 0,
      maximum: 1000,
      doc: { type: 'int', text: 'number of relays (at most one per node: they share the hostPort). **Exactly one of `replicas` or `perNode: true`** (CEL). `kubectl scale rp NAME --replicas N` sets it (scale subresource; a perNode pool refuses it).' }
    }),
    perNode: {
      type: 'boolean',
      description: 'true: run one relay on every eligible node (matching nodeSelector, tolerations and affinity). Mutually exclusive with replicas.',
      doc: { text: '`true`: one relay on every eligible node' }
    },
    nodeSelector: { ...stringMap('Node labels a node must carry to run a relay (as in a Pod).', 64), doc: { type: 'map string→string', text: 'as in a Pod' } },
    tolerations: {
      type: 'array',
      maxItems: 64,
      description: 'Tolerations of the relay pods (core/v1 Toleration).',
      tsType: 'V1Toleration[]',
      doc: { type: 'core/v1 Toleration[]', text: 'as in a Pod (CEL: `Exists` has no value)', leaf: true },
      items: {
        type: 'object',
        properties: {
          key: { type: 'string' },
          operator: { type: 'string', enum: ['Exists', 'Equal'] },
          value: { type: 'string' },
          effect: { type: 'string', enum: ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'] },
          tolerationSeconds: { type: 'integer', format: 'int64' }
        },
        rules: [{ rule: '!has(self.operator) || self.operator != \'Exists\' || !has(self.value) || self.value == \'\'', message: 'a toleration with operator Exists must not have a value' }]
      }
    },
    affinity: {
      type: 'object',
      description: 'Affinity of the relay pods (core/v1 Affinity: nodeAffinity, podAffinity, podAntiAffinity), copied into each pod and validated by the API server when the pod is created.',
      preserveUnknownFields: true,
      tsType: 'V1Affinity',
      doc: { type: 'core/v1 Affinity', text: 'copied into each pod unchanged (schema-less here; the API server validates it in the pod)' }
    },
    image: {
      type: 'string',
      minLength: 1,
      maxLength: 512,
      description: 'Relay container image. Default: the operator\'s own image (the chart passes it as RELAY_IMAGE), which contains the relay.',
      doc: { default: 'operator\'s `RELAY_IMAGE` env (the chart sets it to its own image)', text: 'relay container image' }
    },
    imagePullPolicy: {
      type: 'string',
      enum: ['Always', 'IfNotPresent', 'Never'],
      description: 'Pull policy of the relay container; default IfNotPresent.',
      doc: { default: '`IfNotPresent`' }
    },
    imagePullSecrets: {
      type: 'array',
      maxItems: 16,
      tsType: 'V1LocalObjectReference[]',
      items: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
      doc: { type: '`{name}`[]', leaf: true }
    },
    hostPort: int32('TCP port on the node where peers reach the relay (default 7373). The container itself always listens on 7373; the node port maps to it.', {
      default: 7373,
      minimum: 1,
      maximum: 65535,
      doc: {
        type: 'int',
        default: '**7373**',
        text: 'node TCP port peers dial; the container always listens on 7373 (`containerPort: 7373`, name `relay`), hostPort maps to it. CEL: not a Kubernetes node port (10250, 10255, 10256, 10257, 10259, 2379, 2380, 6443) and not in the default NodePort range 30000–32767. Below 1024 only the ports the operator allows (`--allowed-privileged-host-ports`, chart `operator.allowedPrivilegedHostPorts`, default none): otherwise no relay is created and the pool reports `Degraded=True HostPortNotAllowed` (a hostPort captures that port on the node, so 22, 53, 80 or 443 would take the node\'s SSH, DNS or ingress traffic).'
      }
    }),
    resources: {
      type: 'object',
      description: 'Compute resources of the relay container (core/v1 ResourceRequirements).',
      tsType: 'V1ResourceRequirements',
      doc: { type: 'core/v1 ResourceRequirements (`limits`, `requests`)', text: 'relay container resources', leaf: true },
      properties: {
        limits: { type: 'object', maxProperties: 16, additionalProperties: QUANTITY },
        requests: { type: 'object', maxProperties: 16, additionalProperties: QUANTITY }
      }
    },
    limits,
    rateLimits,
    discovery,
    auth,
    updateStrategy,
    drainSeconds: int32('After a relay pod is told to stop, how long open circuits may keep running (the relay\'s drain_seconds). The pod\'s terminationGracePeriodSeconds is drainSeconds plus a margin.', {
      default: 30,
      minimum: 0,
      maximum: 3600,
      doc: { type: 'int', default: '**30**', text: 'pod `terminationGracePeriodSeconds` is `drainSeconds + 15`' },
      relay: { flag: '--drain-seconds', config: 'drain_seconds' }
    }),
    publicAddress,
    podLabels: { ...stringMap('Extra labels for the relay pods (the operator\'s own labels win).', 32), doc: { type: 'map', text: 'extra pod labels (operator labels win)' } },
    podAnnotations: { ...stringMap('Extra annotations for the relay pods.', 32), doc: { type: 'map', text: 'extra pod annotations' } },
    priorityClassName: { type: 'string', maxLength: 253, description: 'PriorityClass of the relay pods.' },
    logLevel: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'],
      description: 'Log level of the relays (default info).',
      doc: { default: '`info`', text: 'relay `LOG_LEVEL`' }
    }
  }
}

const condition: Prop = {
  type: 'object',
  tsName: 'Condition',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { type: 'string', maxLength: 316, pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$' },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'], tsName: 'ConditionStatus' },
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    lastTransitionTime: { type: 'string', format: 'date-time' },
    reason: { type: 'string', minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$' },
    message: { type: 'string', maxLength: 32768 }
  }
}

const relay: Prop = {
  type: 'object',
  tsName: 'RelayStatus',
  required: ['pod'],
  properties: {
    pod: { type: 'string', description: 'Pod name.' },
    slot: int32('Identity slot (the Secret holding this slot\'s relay key).'),
    node: { type: 'string', description: 'Node the pod is bound to (empty while unscheduled).' },
    publicAddress: { type: 'string', description: 'IP address or DNS name peers dial (with the hostPort).' },
    peerId: { type: 'string', description: 'libp2p peer id of the relay (12D3KooW...).' },
    multiaddr: { type: 'string', description: 'Full address, e.g. /ip4/203.0.113.7/tcp/7373/p2p/12D3KooW...' },
    ready: { type: 'boolean', description: 'The pod is Ready.' },
    registered: { type: 'boolean', description: 'The relay is listed in the discovery registry.' },
    phase: { type: 'string', description: 'Short state, e.g. Pending, Unschedulable, Running, Draining.' }
  }
}

const status: Prop = {
  type: 'object',
  description: 'Observed state, written by the operator.',
  tsName: 'RelayPoolStatus',
  properties: {
    observedGeneration: int64('metadata.generation of the spec this status describes.', { doc: { type: 'int64', text: '`metadata.generation` this status describes' } }),
    replicas: int32('Relay pods of the pool that are not terminating (the scale subresource\'s current replicas).', { doc: { type: 'int', text: 'relay pods that are not terminating; `kubectl scale` reads it (scale subresource)' } }),
    selector: { type: 'string', description: 'Label selector of the pool\'s relay pods, as a string (the scale subresource\'s selector, used by HorizontalPodAutoscalers).', doc: { text: 'label selector of the pool\'s relay pods (scale subresource)' } },
    desiredRelays: int32('Relays the pool should run now.', { doc: { type: 'int', text: 'relays the pool should run now (`replicas`, or eligible nodes in perNode mode)' } }),
    readyRelays: int32('Relays whose pod is Ready.', { doc: { type: 'int', text: 'relay pods that are Ready' } }),
    registeredRelays: int32('Relays currently listed in the discovery registry.', { doc: { type: 'int', text: 'relays listed in the registry' } }),
    conditions: {
      type: 'array',
      maxItems: 16,
      description: 'Ready, Progressing, Degraded and HostPortConflict (metav1.Condition; lastTransitionTime changes only when status flips).',
      listType: 'map',
      listMapKeys: ['type'],
      items: condition,
      doc: { type: 'metav1.Condition (`type`, `status` True/False/Unknown, `observedGeneration`, `lastTransitionTime`, `reason`, `message`), list-map keyed by `type`', text: 'types below; `lastTransitionTime` changes only when `status` flips', leaf: true }
    },
    relays: {
      type: 'array',
      maxItems: 5000,
      description: 'One entry per relay pod of the pool.',
      listType: 'map',
      listMapKeys: ['pod'],
      items: relay,
      doc: { type: 'list-map keyed by `pod`', text: '`pod`, `slot`, `node`, `publicAddress`, `peerId`, `multiaddr`, `ready`, `registered`, `phase`', leaf: true }
    }
  }
}

export const RELAYPOOL_CRD: CrdSource = {
  group: 'pos-relay.io',
  version: 'v1alpha1',
  kind: 'RelayPool',
  listKind: 'RelayPoolList',
  plural: 'relaypools',
  singular: 'relaypool',
  shortNames: ['rp'],
  categories: ['pos-relay'],
  header: [
    'RelayPool: a fleet of pos-relay relays on hostPort, run by the pos-relay operator.',
    'Generated from operator/src/schema/relaypool.ts by `npm run generate:crd`: do not edit.',
    'Field reference: crds/README.md. The Helm chart templates a byte-identical copy in',
    'charts/pos-relay/files/crds/ (operator/test/generated.test.ts fails when either differs).'
  ],
  labels: { 'app.kubernetes.io/name': 'pos-relay', 'app.kubernetes.io/part-of': 'pos-relay' },
  scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
  printerColumns: [
    { name: 'Desired', type: 'integer', description: 'Relays the pool should run (spec.replicas, or the number of eligible nodes in perNode mode)', jsonPath: '.status.desiredRelays' },
    { name: 'Ready', type: 'integer', description: 'Relays whose pod is Ready', jsonPath: '.status.readyRelays' },
    { name: 'Registered', type: 'integer', description: 'Relays currently listed by the discovery registry', jsonPath: '.status.registeredRelays' },
    { name: 'Status', type: 'string', description: 'Status of the Ready condition', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Auth', type: 'boolean', description: 'Relays require account tickets (spec.auth.required)', jsonPath: '.spec.auth.required' },
    { name: 'Reason', type: 'string', priority: 1, description: 'Reason of the Ready condition', jsonPath: '.status.conditions[?(@.type=="Ready")].reason' },
    { name: 'Host-Port', type: 'integer', priority: 1, description: 'TCP port the relays listen on, on every node', jsonPath: '.spec.hostPort' },
    { name: 'Per-Node', type: 'boolean', priority: 1, description: 'One relay on every eligible node', jsonPath: '.spec.perNode' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }
  ],
  root: {
    type: 'object',
    description: 'RelayPool runs a fleet of pos-relay Circuit Relay v2 relays, each on a hostPort of its own node, and keeps the discovery registry in step with the relays that are Ready.',
    required: ['spec'],
    rules: [{ rule: 'self.metadata.name.size() <= 50', message: 'a RelayPool name must be at most 50 characters (it prefixes relay pod names and is used as a label value)' }],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec,
      status
    }
  },
  tsImports: ['V1Affinity', 'V1LocalObjectReference', 'V1ResourceRequirements', 'V1Toleration']
}
