// Generates charts/pos-relay/values.schema.json (the committed output; a test
// fails when it drifts). Run: npx tsc -b && npx node charts/pos-relay/hack/values-schema.mjs
// (it imports the tiers schema from packages/accounts/dist).
// Every object has additionalProperties: false, so a mistyped key fails
// helm install/upgrade/template/lint; only user-keyed maps (labels,
// annotations, nodeSelector, resources) and core Kubernetes types (affinity,
// env valueFrom) are open.
import { tiersJsonSchema } from '@pos-relay/accounts'

const str = (description, extra = {}) => ({ type: 'string', ...(description ? { description } : {}), ...extra })
const bool = (description) => ({ type: 'boolean', ...(description ? { description } : {}) })
const int = (min, max, description) => ({ type: 'integer', ...(min != null ? { minimum: min } : {}), ...(max != null ? { maximum: max } : {}), ...(description ? { description } : {}) })
const obj = (properties, description, required) => ({ type: 'object', additionalProperties: false, ...(description ? { description } : {}), ...(required ? { required } : {}), properties })
const stringMap = (description) => ({ type: 'object', additionalProperties: { type: 'string' }, ...(description ? { description } : {}) })
const quantity = { anyOf: [{ type: 'integer' }, { type: 'number' }, { type: 'string', pattern: '^[+]?[0-9.]+([eE][-+]?[0-9]+)?([KMGTPE]i|[numkMGTPE])?$' }] }
const resources = obj({
  requests: { type: 'object', additionalProperties: quantity },
  limits: { type: 'object', additionalProperties: quantity },
  claims: { type: 'array', items: obj({ name: str(), request: str() }, null, ['name']) }
}, 'core/v1 ResourceRequirements')
const toleration = obj({
  key: str(),
  operator: { type: 'string', enum: ['Exists', 'Equal'] },
  value: str(),
  effect: { type: 'string', enum: ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'] },
  tolerationSeconds: { type: ['integer', 'null'] }
})
const security = {
  podSecurityContext: { type: 'object', description: 'core/v1 PodSecurityContext of the pod (replaces the default; null a key to drop it, e.g. runAsUser under OpenShift\'s restricted SCC)' },
  containerSecurityContext: { type: 'object', description: 'core/v1 SecurityContext of the container (replaces the default)' }
}
const placement = {
  nodeSelector: stringMap('node labels'),
  tolerations: { type: 'array', items: toleration },
  affinity: { type: 'object', description: 'core/v1 Affinity (validated by the API server)' }
}
const envVar = { type: 'object', required: ['name'], additionalProperties: false, properties: { name: str(), value: str(), valueFrom: { type: 'object' } } }
const pullPolicy = { type: 'string', enum: ['Always', 'IfNotPresent', 'Never'] }
const dnsName = { type: 'string', maxLength: 63, pattern: '^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' }
const logLevel = { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] }
const podDisruptionBudget = obj({ enabled: bool(), minAvailable: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^[0-9]+%$' }] } })
/** what the operator's and discovery's Deployments both take, in values order */
const workload = {
  resources,
  ...placement,
  podAnnotations: stringMap(),
  podLabels: stringMap(),
  priorityClassName: str(),
  extraEnv: { type: 'array', items: envVar },
  ...security
}
const duration = str('Prometheus duration', { pattern: '^[0-9]+(ms|s|m|h)$' })

const schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'pos-relay chart values',
  type: 'object',
  additionalProperties: false,
  properties: {
    global: { type: 'object', description: 'reserved by Helm for parent charts' },
    nameOverride: dnsName,
    fullnameOverride: dnsName,
    image: obj({ repository: str(null, { minLength: 1 }), tag: str(), pullPolicy }, 'the one pos-relay image', ['repository']),
    imagePullSecrets: { type: 'array', items: obj({ name: str(null, { minLength: 1 }) }, null, ['name']) },
    crds: obj({ enabled: bool('render the RelayPool CRD so helm upgrade upgrades it'), keep: bool('helm.sh/resource-policy: keep on the CRD') }),
    rbac: obj({ create: bool() }),
    operator: obj({
      replicas: int(0, 10),
      watchNamespace: dnsName,
      leaderElection: obj({ enabled: bool(), leaseName: str(null, { minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }), leaseDurationSeconds: int(2, 600), renewDeadlineSeconds: int(1, 599), retryPeriodSeconds: int(1, 598) }),
      podDisruptionBudget,
      metricsPort: int(1024, 65535),
      logLevel,
      relayImage: obj({ repository: str(), tag: str(), pullPolicy: { type: 'string', enum: ['', 'Always', 'IfNotPresent', 'Never'] } }),
      allowedPrivilegedHostPorts: { type: 'array', description: 'hostPorts below 1024 that RelayPools may use (default none)', maxItems: 16, uniqueItems: true, items: int(1, 1023) },
      serviceAccount: obj({ create: bool(), name: str(), annotations: stringMap() }),
      ...workload
    }),
    relayPods: obj(security, 'securityContext of the relay pods the operator creates (passed to it as --relay-pod-security-context / --relay-container-security-context)'),
    discovery: obj({
      replicas: int(0, 100),
      ttlSeconds: int(3, 3600),
      logLevel,
      publicAddressesOnly: bool('refuse loopback and private relay addresses (public fleets)'),
      requireSigned: bool('refuse registrations and deletions not signed by the relay\'s own key'),
      existingSecret: str('Secret with keys p2p-secret, redis-url and api-url; default: created by the secrets hook'),
      service: obj({
        type: { type: 'string', enum: ['ClusterIP', 'NodePort', 'LoadBalancer'] },
        port: int(1, 65535),
        nodePort: { type: ['integer', 'null'], minimum: 1, maximum: 65535 },
        annotations: stringMap()
      }),
      podDisruptionBudget,
      autoscaling: obj({ enabled: bool('a HorizontalPodAutoscaler on CPU instead of a fixed replicas count'), minReplicas: int(1, 100), maxReplicas: int(1, 1000), targetCPUUtilizationPercentage: int(1, 100) }),
      ...workload
    }),
    accounts: obj({
      enabled: bool('accounts, tickets, metering and revocation in discovery'),
      ticketTtlSeconds: int(1, 3600, 'relay ticket lifetime'),
      ticketKeys: obj({
        existingSecret: str('Secret with key ticket-keys.json; default: created by the hook'),
        generation: int(1, null, 'raise by one to rotate the ticket signing key'),
        retireAfterSeconds: int(3600, null, 'a superseded key is dropped this long after it stopped signing')
      }),
      adminSecret: obj({ existingSecret: str('Secret with key admin-secret; default: created by the hook') }),
      redis: obj({ existingSecret: str('Secret with the Redis URL for accounts; default: the registry\'s Redis'), urlKey: str(null, { minLength: 1 }) }),
      // generated from the zod schema of --tiers-file (packages/accounts/src/tiers.ts): one set of rules
      tiers: { ...tiersJsonSchema(), description: 'tiers by name, as --tiers-file; empty = built-in free, pro, unlimited' },
      hook: obj({ resources, ...security })
    }),
    redis: obj({
      enabled: bool(),
      image: obj({ repository: str(null, { minLength: 1 }), tag: str(null, { minLength: 1 }), pullPolicy }),
      existingSecret: str('Secret with key password; default: created by the secrets hook'),
      externalUrl: str('redis:// or rediss:// URL', { pattern: '^$|^rediss?://' }),
      resources,
      ...placement,
      ...security
    }),
    monitoring: obj({
      podMonitor: obj({ enabled: bool(), interval: duration, additionalLabels: stringMap() }),
      serviceMonitor: obj({ enabled: bool(), interval: duration, additionalLabels: stringMap() }),
      prometheusRule: obj({ enabled: bool(), namespace: dnsName, grafanaUrl: str('', { pattern: '^$|^https?://[^\\s]+$' }), additionalLabels: stringMap(), additionalRuleLabels: stringMap(), disabled: { type: 'object', additionalProperties: { type: 'boolean' } } })
    }),
    dashboards: obj({ enabled: bool(), label: str(null, { minLength: 1 }), labelValue: str(), namespace: dnsName, annotations: stringMap() }),
    networkPolicy: obj({ enabled: bool() }),
    cleanup: obj({ enabled: bool(), timeoutSeconds: int(10, 3600), removeFinalizersOnTimeout: bool(), resources, ...security }),
    tests: obj({ requireRelays: bool() }, '`helm test`: pos-relay check from inside the cluster')
  },
  // bundled Redis or an external URL (or an existing Secret that carries the URL)
  if: { properties: { redis: { properties: { enabled: { const: false } } } } },
  then: {
    anyOf: [
      { properties: { redis: { required: ['externalUrl'], properties: { externalUrl: { minLength: 1 } } } } },
      { properties: { discovery: { required: ['existingSecret'], properties: { existingSecret: { minLength: 1 } } } } }
    ]
  }
}
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
writeFileSync(process.argv[2] ?? fileURLToPath(new URL('../values.schema.json', import.meta.url)), JSON.stringify(schema, null, 2) + '\n')
