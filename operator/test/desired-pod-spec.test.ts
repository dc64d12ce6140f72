// computeDesired: what a relay pod is made of from the pool spec (flags, limits, Secrets, auth).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ANNOTATIONS, hashOf, LABELS, relayArgs } from '@pos-relay/operator'
import { compute, identity, node, pool, relayPod } from './fixtures.ts'

const cond = (d: any, type: string) => d.status.conditions.find((c: any) => c.type === type)
/** the relay limits file the pool's ConfigMap holds */
const limitsOf = (d: any): unknown => JSON.parse(d.limitsConfigMap.data['limits.json'])

describe('computeDesired: pod spec from the pool spec', () => {
  const spec = {
    replicas: 1,
    hostPort: 17373,
    drainSeconds: 120,
    limits: { maxReservations: 100, reservationTtlSeconds: 600, maxCircuits: 10, circuitDataLimitBytes: 1048576, circuitDurationSeconds: 60 },
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
    tolerations: [{ key: 'k', operator: 'Exists', effect: 'NoSchedule' }],
    nodeSelector: { role: 'edge' },
    priorityClassName: 'relay-critical',
    imagePullSecrets: [{ name: 'regcred' }],
    podLabels: { team: 'p2p', 'pos-relay.io/pool': 'spoofed' },
    podAnnotations: { note: 'x' },
    logLevel: 'debug',
    imagePullPolicy: 'Always'
  }
  const d = compute({ pool: pool(spec), nodes: [node('n1', { labels: { role: 'edge' } })] })
  const pod: any = d.createPods[0]
  const c = pod.spec.containers[0]

  it('limits that need a restart and drain become relay flags, the reloadable ones the limits file; grace period is drain + 15 s', () => {
    assert.deepEqual(c.args.slice(5), ['--port', '7373', '--metrics-port', '9373', '--reservation-ttl', '600', '--drain-seconds', '120', '--limits-file', '/var/run/pos-relay/limits/limits.json'])
    assert.deepEqual(limitsOf(d), { limits: { max_reservations: 100, max_circuits: 10, circuit_data_limit_bytes: 1048576, circuit_duration_seconds: 60 }, rate_limits: {} })
    assert.deepEqual(pod.spec.volumes[2], { name: 'limits', configMap: { name: 'edge-limits', defaultMode: 0o444, items: [{ key: 'limits.json', path: 'limits.json' }] } })
    assert.deepEqual(c.volumeMounts[2], { name: 'limits', mountPath: '/var/run/pos-relay/limits', readOnly: true })
    assert.equal(pod.spec.terminationGracePeriodSeconds, 135)
    assert.deepEqual(c.ports[0], { name: 'relay', containerPort: 7373, hostPort: 17373, protocol: 'TCP' })
    assert.equal(c.args[4], '/ip4/10.0.0.1/tcp/17373')
  })

  it('scheduling, resources and metadata come from the spec; the operator\'s labels win', () => {
    assert.deepEqual(c.resources, spec.resources)
    assert.deepEqual(pod.spec.tolerations, spec.tolerations)
    assert.deepEqual(pod.spec.nodeSelector, { role: 'edge' })
    assert.equal(pod.spec.priorityClassName, 'relay-critical')
    assert.deepEqual(pod.spec.imagePullSecrets, [{ name: 'regcred' }])
    assert.equal(pod.metadata.labels.team, 'p2p')
    assert.equal(pod.metadata.labels[LABELS.pool], 'edge')
    assert.equal(pod.metadata.annotations.note, 'x')
    assert.deepEqual(c.env, [{ name: 'POS_RELAY_LOG_LEVEL', value: 'debug' }])
    assert.equal(c.imagePullPolicy, 'Always')
    assert.equal(pod.spec.automountServiceAccountToken, false)
    assert.equal(c.securityContext.readOnlyRootFilesystem, true)
  })

  it('relayArgs omits unset limits', () => {
    assert.deepEqual(relayArgs(pool({ limits: undefined }), '192.0.2.1'), ['run', '--config', '/etc/pos-relay/config.json', '--announce', '/ip4/192.0.2.1/tcp/7373', '--port', '7373', '--metrics-port', '9373', '--drain-seconds', '30', '--limits-file', '/var/run/pos-relay/limits/limits.json'])
  })

  it('the template hash changes with anything that shapes the pod, and only then', () => {
    const h = pod.metadata.annotations[ANNOTATIONS.templateHash]
    assert.match(h, /^[0-9a-f]{16}$/)
    const same: any = compute({ pool: pool(spec), nodes: [node('n1', { labels: { role: 'edge' } })] }).createPods[0]
    assert.equal(same.metadata.annotations[ANNOTATIONS.templateHash], h)
    const other: any = compute({ pool: pool({ ...spec, drainSeconds: 60 }), nodes: [node('n1', { labels: { role: 'edge' } })] }).createPods[0]
    assert.notEqual(other.metadata.annotations[ANNOTATIONS.templateHash], h)
    assert.equal(hashOf({ b: 1, a: [1, { d: 2, c: 3 }] }), hashOf({ a: [1, { c: 3, d: 2 }], b: 1 }))
  })
})

describe('computeDesired: connection and rate limits', () => {
  const nodes = [node('n1')]
  const podOf = (spec: Record<string, unknown>): any => compute({ pool: pool({ replicas: 1, ...spec }), nodes }).createPods[0]
  const container = (spec: Record<string, unknown>): any => podOf(spec).spec.containers[0]
  const fileOf = (spec: Record<string, unknown>): unknown => limitsOf(compute({ pool: pool({ replicas: 1, ...spec }), nodes }))
  // the limit flags: after the fixed ones (up to --metrics-port), before --drain-seconds (the last field of the spec that is a flag)
  const tail = (args: string[]): string[] => args.slice(args.indexOf('--metrics-port') + 2, args.indexOf('--drain-seconds'))

  it('every connection limit and rate limit reaches the relay with exactly the value set: a flag when it needs a restart, else the limits file', () => {
    const spec = {
      limits: { maxConnections: 5000, maxPendingConnections: 64, handshakeTimeoutSeconds: 3, ipMaxConnections: 8, peerMaxCircuits: 4, ipMaxCircuits: 12, circuitIdleTimeoutSeconds: 120, maxBufferedBytes: 67108864 },
      rateLimits: { ipConnectionsPerSecond: 5, peerReservationsPerMinute: 10, peerCircuitsPerMinute: 60 }
    }
    assert.deepEqual(tail(container(spec).args), ['--max-pending-connections', '64', '--handshake-timeout', '3', '--ip-connections-per-second', '5'])
    assert.deepEqual(fileOf(spec), {
      limits: { max_connections: 5000, ip_max_connections: 8, peer_max_circuits: 4, ip_max_circuits: 12, circuit_idle_timeout_seconds: 120, max_buffered_bytes: 67108864 },
      rate_limits: { peer_reservations_per_minute: 10, peer_circuits_per_minute: 60 }
    })
  })

  it('0 is passed on (it means off, unlimited or derived), not dropped as unset', () => {
    const spec = { limits: { maxConnections: 0, ipMaxConnections: 0, peerMaxCircuits: 0, ipMaxCircuits: 0, circuitIdleTimeoutSeconds: 0, maxBufferedBytes: 0 }, rateLimits: { ipConnectionsPerSecond: 0, peerReservationsPerMinute: 0, peerCircuitsPerMinute: 0 } }
    assert.deepEqual(tail(container(spec).args), ['--ip-connections-per-second', '0'])
    assert.deepEqual(fileOf(spec), {
      limits: { max_connections: 0, ip_max_connections: 0, peer_max_circuits: 0, ip_max_circuits: 0, circuit_idle_timeout_seconds: 0, max_buffered_bytes: 0 },
      rate_limits: { peer_reservations_per_minute: 0, peer_circuits_per_minute: 0 }
    })
  })

  it('unset fields leave the relay defaults: no flag, and no Redis for rate limits', () => {
    for (const spec of [{}, { rateLimits: {} }, { rateLimits: { shared: false } }, { limits: { maxCircuits: 10 } }]) {
      const c = container(spec)
      assert.ok(!c.args.some((a: string) => /^--(max-connections|max-pending-connections|handshake-timeout|ip-max-connections|peer-max-circuits|ip-max-circuits|circuit-idle-timeout|max-buffered-bytes|ip-connections-per-second|peer-reservations-per-minute|peer-circuits-per-minute|redis)$/.test(a)), JSON.stringify(c.args))
      assert.deepEqual(c.env, [{ name: 'POS_RELAY_LOG_LEVEL', value: 'info' }])
    }
  })

  it('shared: true → REDIS_URL from the discovery registry\'s Secret (default key redis-url), never an argument', () => {
    const c = container({ rateLimits: { shared: true, peerCircuitsPerMinute: 60 } })
    assert.deepEqual(c.env, [{ name: 'POS_RELAY_LOG_LEVEL', value: 'info' }, { name: 'POS_RELAY_RATE_LIMIT_REDIS_URL', valueFrom: { secretKeyRef: { name: 'disc', key: 'redis-url' } } }])
    assert.ok(!c.args.includes('--redis'))
    const keyed = container({ discovery: { redisUrlSecretRef: { name: 'disc', key: 'url' } }, rateLimits: { shared: true } })
    assert.deepEqual(keyed.env[1], { name: 'POS_RELAY_RATE_LIMIT_REDIS_URL', valueFrom: { secretKeyRef: { name: 'disc', key: 'url' } } })
  })

  it('rateLimits.redisUrlSecretRef names another Redis; without shared: true it is ignored', () => {
    const c = container({ rateLimits: { shared: true, redisUrlSecretRef: { name: 'limits-redis', key: 'url' } } })
    assert.deepEqual(c.env[1], { name: 'POS_RELAY_RATE_LIMIT_REDIS_URL', valueFrom: { secretKeyRef: { name: 'limits-redis', key: 'url' } } })
    assert.deepEqual(container({ rateLimits: { shared: true, redisUrlSecretRef: { name: 'limits-redis' } } }).env[1].valueFrom.secretKeyRef, { name: 'limits-redis', key: 'redis-url' })
    // the CRD rejects this combination; the operator still never guesses a Redis
    assert.equal(container({ rateLimits: { redisUrlSecretRef: { name: 'limits-redis' } } }).env.length, 1)
  })

  it('a reloadable limit changes the limits ConfigMap and not the template hash; a limit that needs a restart, or sharing, changes the hash (pods are rolled)', () => {
    const hash = (spec: Record<string, unknown>): string => podOf(spec).metadata.annotations[ANNOTATIONS.templateHash]
    const base = hash({ rateLimits: { peerCircuitsPerMinute: 60 } })
    for (const reloadable of [{ rateLimits: { peerCircuitsPerMinute: 61 } }, { rateLimits: { peerCircuitsPerMinute: 60 }, limits: { maxCircuits: 7, maxReservations: 9, circuitDataLimitBytes: 65536 } }, { rateLimits: { peerCircuitsPerMinute: 60 }, auth: { required: false, accountCircuitsPerMinute: 5 } }]) {
      assert.equal(hash(reloadable), base, JSON.stringify(reloadable))
      assert.notDeepEqual(fileOf(reloadable), fileOf({ rateLimits: { peerCircuitsPerMinute: 60 } }), JSON.stringify(reloadable))
    }
    assert.notEqual(hash({ rateLimits: { peerCircuitsPerMinute: 60, ipConnectionsPerSecond: 3 } }), base)
    assert.notEqual(hash({ rateLimits: { peerCircuitsPerMinute: 60 }, limits: { reservationTtlSeconds: 60 } }), base)
    assert.deepEqual(fileOf({ rateLimits: { peerCircuitsPerMinute: 60, ipConnectionsPerSecond: 3 } }), fileOf({ rateLimits: { peerCircuitsPerMinute: 60 } }))
    assert.notEqual(hash({ rateLimits: { peerCircuitsPerMinute: 60, shared: true } }), base)
    assert.notEqual(hash({ rateLimits: { peerCircuitsPerMinute: 60 }, limits: { handshakeTimeoutSeconds: 4 } }), base)
    assert.equal(hash({ rateLimits: { peerCircuitsPerMinute: 60 }, discovery: { redisUrlSecretRef: { name: 'disc' }, ttlSeconds: 10 } }), base)
    // a pool written before these fields existed keeps its pods: nothing new is rendered for it
    assert.equal(hash({}), hash({ rateLimits: {} }))
  })

  it('the flags are flags of the relay CLI that read the same environment variables', async () => {
    const { spawnCli } = await import('./kube-helpers.ts')
    const p = spawnCli(['run', '--help'])
    assert.equal(await p.exited, 0)
    const help = p.stdout.join(' ').replace(/\s+/g, ' ') // commander wraps at 80 columns
    for (const [flag, env] of [['--max-connections', 'POS_RELAY_MAX_CONNECTIONS'], ['--max-pending-connections', 'POS_RELAY_MAX_PENDING_CONNECTIONS'], ['--handshake-timeout', 'POS_RELAY_HANDSHAKE_TIMEOUT_SECONDS'],
      ['--ip-max-connections', 'POS_RELAY_IP_MAX_CONNECTIONS'], ['--ip-connections-per-second', 'POS_RELAY_IP_CONNECTIONS_PER_SECOND'], ['--peer-reservations-per-minute', 'POS_RELAY_PEER_RESERVATIONS_PER_MINUTE'],
      ['--peer-circuits-per-minute', 'POS_RELAY_PEER_CIRCUITS_PER_MINUTE'], ['--redis', 'POS_RELAY_RATE_LIMIT_REDIS_URL']]) {
      const at = help.indexOf(` ${flag} <`)
      assert.ok(at !== -1, `pos-relay run --help lacks ${flag}`)
      // every option names its variable, so the first one after the flag is the flag's
      assert.equal(/env: ([A-Z_]+)\)/.exec(help.slice(at))?.[1], env, `${flag} should read ${env}`)
    }
    // relay pods get the rate-limit Redis by its namespaced name (relayEnv), the one `run --redis` reads
    const { program } = await import('pos-relay')
    const redis = program().commands.find((c) => c.name() === 'run')!.options.find((o) => o.long === '--redis')!
    assert.equal(redis.envVar, 'POS_RELAY_RATE_LIMIT_REDIS_URL')
  })
})

describe('computeDesired: discovery.p2pSecretRef', () => {
  const nodes = [node('n1')]
  const discovery = { redisUrlSecretRef: { name: 'disc' }, ttlSeconds: 30 }
  const desired = (spec: Record<string, unknown>): any => compute({ pool: pool({ replicas: 1, ...spec }), nodes })

  it('relays get the p2p secret and the discovery URL from the named Secret by env, and run refresh-only', () => {
    const d = desired({ discovery: { ...discovery, p2pSecretRef: { name: 'pos-relay-discovery' } } })
    const c = d.createPods[0].spec.containers[0]
    assert.ok(c.args.includes('--refresh-only'))
    assert.deepEqual(c.env, [
      { name: 'POS_RELAY_LOG_LEVEL', value: 'info' },
      { name: 'POS_RELAY_P2P_SECRET', valueFrom: { secretKeyRef: { name: 'pos-relay-discovery', key: 'p2p-secret' } } },
      { name: 'POS_RELAY_API_URL', valueFrom: { secretKeyRef: { name: 'pos-relay-discovery', key: 'api-url', optional: true } } }
    ])
    const keyed = desired({ discovery: { ...discovery, p2pSecretRef: { name: 's', key: 'token', apiUrlKey: 'url' } } }).createPods[0].spec.containers[0]
    assert.deepEqual(keyed.env.slice(1).map((e: any) => e.valueFrom.secretKeyRef), [{ name: 's', key: 'token' }, { name: 's', key: 'url', optional: true }])
  })

  it('the slot\'s identity Secret stays immutable and holds no pool secret; setting the ref rolls the pods', () => {
    const without = desired({ discovery })
    const withRef = desired({ discovery: { ...discovery, p2pSecretRef: { name: 'pos-relay-discovery' } } })
    assert.deepEqual(withRef.createSecrets, without.createSecrets)
    assert.equal(withRef.createSecrets[0].immutable, true)
    assert.ok(!without.createPods[0].spec.containers[0].args.includes('--refresh-only'))
    assert.notEqual(withRef.createPods[0].metadata.annotations[ANNOTATIONS.templateHash], without.createPods[0].metadata.annotations[ANNOTATIONS.templateHash])
  })
})

describe('computeDesired: spec.auth', () => {
  const nodes = [node('n1')]
  const AUTH = { required: true }
  const podOf = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}): any => compute({ pool: pool({ replicas: 1, discovery: { redisUrlSecretRef: { name: 'disc' }, p2pSecretRef: { name: 'p2p' }, ttlSeconds: 30 }, ...spec }), nodes, ...extra }).createPods[0]
  const container = (spec: Record<string, unknown>): any => podOf(spec).spec.containers[0]
  const envOf = (c: any): Record<string, unknown> => Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]))

  it('required: true → POS_RELAY_AUTH=true and the accounts Redis from the discovery registry\'s Secret by default (keys fetched from <api_url>)', () => {
    const env = envOf(container({ auth: AUTH }))
    assert.equal(env.POS_RELAY_AUTH, 'true')
    assert.deepEqual(env.POS_RELAY_AUTH_REDIS_URL, { secretKeyRef: { name: 'disc', key: 'redis-url' } })
    assert.equal(env.POS_RELAY_TICKET_KEYS_PUBLIC_FILE, undefined)
    assert.equal(env.POS_RELAY_TICKET_KEYS_URL, undefined)
    // the discovery URL the keys are fetched from comes with the p2p secret
    assert.deepEqual(env.POS_RELAY_API_URL, { secretKeyRef: { name: 'p2p', key: 'api-url', optional: true } })
  })

  it('redisSecretRef, ticketKeysUrl, ticketKeysSecretRef and tiersConfigMapRef: env, read-only mounts with fixed file names, never values in the spec', () => {
    const pod = podOf({ auth: { required: true, redisSecretRef: { name: 'acct', key: 'url' }, ticketKeysUrl: 'https://keys.example/jwks', ticketKeysSecretRef: { name: 'keys', key: 'public.json' }, tiersConfigMapRef: { name: 'tiers', key: 't.json' } } })
    const c = pod.spec.containers[0]
    const env = envOf(c)
    assert.deepEqual(env.POS_RELAY_AUTH_REDIS_URL, { secretKeyRef: { name: 'acct', key: 'url' } })
    assert.equal(env.POS_RELAY_TICKET_KEYS_URL, 'https://keys.example/jwks')
    assert.equal(env.POS_RELAY_TICKET_KEYS_PUBLIC_FILE, '/var/run/pos-relay/ticket-keys/jwks.json')
    assert.equal(env.POS_RELAY_TIERS_FILE, '/var/run/pos-relay/tiers/tiers.json')
    assert.deepEqual(pod.spec.volumes.slice(3), [
      { name: 'ticket-keys', secret: { secretName: 'keys', defaultMode: 0o440, items: [{ key: 'public.json', path: 'jwks.json' }] } },
      { name: 'tiers', configMap: { name: 'tiers', defaultMode: 0o444, items: [{ key: 't.json', path: 'tiers.json' }] } }
    ])
    assert.deepEqual(c.volumeMounts.slice(3), [
      { name: 'ticket-keys', mountPath: '/var/run/pos-relay/ticket-keys', readOnly: true },
      { name: 'tiers', mountPath: '/var/run/pos-relay/tiers', readOnly: true }
    ])
    assert.ok(!c.args.includes('--auth'), 'auth is passed by environment')
  })

  it('per-account circuit rate goes into the limits file, metering interval becomes its `pos-relay run` flag', () => {
    const c = container({ auth: { required: true, accountCircuitsPerMinute: 30, meteringIntervalSeconds: 2 } })
    assert.ok(!c.args.includes('--account-circuits-per-minute'))
    assert.deepEqual(limitsOf(compute({ pool: pool({ replicas: 1, auth: { required: false, accountCircuitsPerMinute: 30 } }), nodes: [node('n1')] })), { limits: {}, rate_limits: { account_circuits_per_minute: 30 } })
    const m = c.args.indexOf('--metering-interval')
    assert.deepEqual(c.args.slice(m, m + 2), ['--metering-interval', '2'])
  })

  it('absent or required: false → nothing auth-related, and pools written before spec.auth keep their pods (same template hash)', () => {
    const hash = (spec: Record<string, unknown>): string => podOf(spec).metadata.annotations[ANNOTATIONS.templateHash]
    for (const spec of [{}, { auth: { required: false, ticketKeysSecretRef: { name: 'keys' } } }]) {
      const c = container(spec)
      assert.ok(!c.env.some((e: any) => /AUTH|TICKET|TIERS/.test(e.name)), JSON.stringify(c.env))
      assert.equal(podOf(spec).spec.volumes.length, 3)
    }
    assert.equal(hash({}), hash({ auth: { required: false } }))
    assert.notEqual(hash({}), hash({ auth: AUTH }))
  })

  it('an auth problem (missing Secret, private key): no pod created, Degraded and Progressing say why', () => {
    const d = compute({ pool: pool({ replicas: 2, auth: AUTH }), nodes: [node('n1'), node('n2')], authProblem: 'spec.auth.ticketKeysSecretRef: Secret relays/keys not found' })
    assert.deepEqual(d.createPods, [])
    assert.deepEqual(d.deletePods, [])
    assert.equal(cond(d, 'Degraded').status, 'True')
    assert.equal(cond(d, 'Degraded').reason, 'AuthSecretInvalid')
    assert.match(cond(d, 'Degraded').message, /Secret relays\/keys not found/)
    assert.equal(cond(d, 'Progressing').reason, 'AuthSecretInvalid')
  })

  it('an auth problem leaves running relays as they are: an outdated Ready pod is not replaced (nothing half-applied)', () => {
    const old = pool({ replicas: 1 })
    const running = relayPod(old, 0, 'n1', 'ready')
    const withAuth = pool({ replicas: 1, auth: AUTH })
    const ok = compute({ pool: withAuth, nodes, pods: [running], secrets: [identity(withAuth, 0, 'n1')] })
    assert.deepEqual(ok.deletePods.map((x) => x.reason), ['outdated'], 'without a problem the pod is rolled to the auth spec')
    const refused = compute({ pool: withAuth, nodes, pods: [running], secrets: [identity(withAuth, 0, 'n1')], authProblem: 'private key' })
    assert.deepEqual(refused.deletePods, [])
    assert.deepEqual(refused.createPods, [])
    assert.equal(refused.slots[0]!.pod?.metadata.name, 'edge-0')
  })

  it('an auth problem of a pool that does not require auth is ignored', () => {
    const d = compute({ pool: pool({ replicas: 1, auth: { required: false } }), nodes, authProblem: 'whatever' })
    assert.equal(d.createPods.length, 1)
    assert.equal(cond(d, 'Degraded').status, 'False')
  })
})
