/**
 * The RelayPool CRD in a real kube-apiserver: CEL rules reject bad pools with
 * their messages, defaults are applied, the status and scale subresources and
 * the printer columns work, the example applies.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { CRD_FILE, REPO_ROOT, ensureKubeBinaries, startControlPlane, type ControlPlane } from '../harness.ts'
import { k, kJson } from './helpers.ts'

const EXAMPLE = readFileSync(`${REPO_ROOT}/examples/relaypool.yaml`, 'utf8')

/** A RelayPool manifest (JSON is YAML) from a spec. */
function pool (name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', metadata: { name, namespace: 'default' }, spec })
}
const discovery = { redisUrlSecretRef: { name: 'pos-relay-discovery' } }

// Outside any test so no test timeout applies: the first run builds the binaries (~12 min).
await ensureKubeBinaries()

describe('RelayPool CRD against a real API server', { timeout: 300_000 }, () => {
  let cp: ControlPlane
  before(async () => {
    cp = await startControlPlane({ crds: [CRD_FILE] })
  })
  after(async () => { await cp?.stop() })

  const rejected: Array<[string, Record<string, unknown>, string]> = [
    ['neither replicas nor perNode', { discovery }, 'set exactly one of spec.replicas (a fixed number of relays) or spec.perNode: true (one relay on every eligible node)'],
    ['both replicas and perNode', { replicas: 2, perNode: true, discovery }, 'set exactly one of spec.replicas (a fixed number of relays) or spec.perNode: true (one relay on every eligible node)'],
    ['perNode: false without replicas', { perNode: false, discovery }, 'set exactly one of spec.replicas'],
    ['hostPort above 65535', { replicas: 1, hostPort: 70000, discovery }, 'spec.hostPort in body should be less than or equal to 65535'],
    ['hostPort 0', { replicas: 1, hostPort: 0, discovery }, 'spec.hostPort in body should be greater than or equal to 1'],
    ['hostPort of the kubelet', { replicas: 1, hostPort: 10250, discovery }, "spec.hostPort must not be a port of the node's own Kubernetes services"],
    ['hostPort in the NodePort range', { replicas: 1, hostPort: 30080, discovery }, 'spec.hostPort must not be in the default Service NodePort range'],
    ['drainSeconds above an hour', { replicas: 1, drainSeconds: 7200, discovery }, 'spec.drainSeconds in body should be less than or equal to 3600'],
    ['negative drainSeconds', { replicas: 1, drainSeconds: -1, discovery }, 'spec.drainSeconds in body should be greater than or equal to 0'],
    ['static address with 2 replicas', { replicas: 2, publicAddress: { static: '203.0.113.7' }, discovery }, 'spec.publicAddress.static gives every relay the same address, so it needs spec.replicas of 0 or 1'],
    ['static address in perNode mode', { perNode: true, publicAddress: { static: '203.0.113.7' }, discovery }, 'spec.publicAddress.static gives every relay the same address'],
    ['static address that is no host', { replicas: 1, publicAddress: { static: 'Not_A_Host!' }, discovery }, 'publicAddress.static must be an IP address or a lower-case DNS name'],
    ['maxReservations 0', { replicas: 1, limits: { maxReservations: 0 }, discovery }, 'spec.limits.maxReservations in body should be greater than or equal to 1'],
    ['reservation TTL of 10 s', { replicas: 1, limits: { reservationTtlSeconds: 10 }, discovery }, 'spec.limits.reservationTtlSeconds in body should be greater than or equal to 30'],
    ['maxCircuits 0', { replicas: 1, limits: { maxCircuits: 0 }, discovery }, 'spec.limits.maxCircuits in body should be greater than or equal to 1'],
    ['a 100-byte data limit', { replicas: 1, limits: { circuitDataLimitBytes: 100 }, discovery }, 'limits.circuitDataLimitBytes must be 0 (unlimited) or between 65536 (64 KiB) and 1099511627776 (1 TiB)'],
    ['a 5 s circuit duration', { replicas: 1, limits: { circuitDurationSeconds: 5 }, discovery }, 'limits.circuitDurationSeconds must be 0 (unlimited) or between 10 and 86400 seconds'],
    ['negative maxConnections', { replicas: 1, limits: { maxConnections: -1 }, discovery }, 'spec.limits.maxConnections in body should be greater than or equal to 0'],
    ['maxPendingConnections 0', { replicas: 1, limits: { maxPendingConnections: 0 }, discovery }, 'spec.limits.maxPendingConnections in body should be greater than or equal to 1'],
    ['a 0 s handshake timeout', { replicas: 1, limits: { handshakeTimeoutSeconds: 0 }, discovery }, 'spec.limits.handshakeTimeoutSeconds in body should be greater than or equal to 1'],
    ['a 121 s handshake timeout', { replicas: 1, limits: { handshakeTimeoutSeconds: 121 }, discovery }, 'spec.limits.handshakeTimeoutSeconds in body should be less than or equal to 120'],
    ['negative ipMaxConnections', { replicas: 1, limits: { ipMaxConnections: -1 }, discovery }, 'spec.limits.ipMaxConnections in body should be greater than or equal to 0'],
    ['negative peerMaxCircuits', { replicas: 1, limits: { peerMaxCircuits: -1 }, discovery }, 'spec.limits.peerMaxCircuits in body should be greater than or equal to 0'],
    ['ipMaxCircuits above 1000000', { replicas: 1, limits: { ipMaxCircuits: 1000001 }, discovery }, 'spec.limits.ipMaxCircuits in body should be less than or equal to 1000000'],
    ['a 5 s circuit idle timeout', { replicas: 1, limits: { circuitIdleTimeoutSeconds: 5 }, discovery }, 'limits.circuitIdleTimeoutSeconds must be 0 (never) or between 10 and 86400 seconds'],
    ['a 1 MiB buffer budget', { replicas: 1, limits: { maxBufferedBytes: 1048576 }, discovery }, 'limits.maxBufferedBytes must be 0 (unlimited) or between 16777216 (16 MiB) and 1099511627776 (1 TiB)'],
    ['a circuit idle timeout above a day', { replicas: 1, limits: { circuitIdleTimeoutSeconds: 86401 }, discovery }, 'spec.limits.circuitIdleTimeoutSeconds in body should be less than or equal to 86400'],
    ['a rate-limit Redis without shared: true', { replicas: 1, rateLimits: { redisUrlSecretRef: { name: 'r' } }, discovery }, 'rateLimits.redisUrlSecretRef is only used with rateLimits.shared: true'],
    ['a rate-limit Redis with shared: false', { replicas: 1, rateLimits: { shared: false, redisUrlSecretRef: { name: 'r' } }, discovery }, 'rateLimits.redisUrlSecretRef is only used with rateLimits.shared: true'],
    ['negative ipConnectionsPerSecond', { replicas: 1, rateLimits: { ipConnectionsPerSecond: -1 }, discovery }, 'spec.rateLimits.ipConnectionsPerSecond in body should be greater than or equal to 0'],
    ['ipConnectionsPerSecond above 100000', { replicas: 1, rateLimits: { ipConnectionsPerSecond: 100001 }, discovery }, 'spec.rateLimits.ipConnectionsPerSecond in body should be less than or equal to 100000'],
    ['negative peerReservationsPerMinute', { replicas: 1, rateLimits: { peerReservationsPerMinute: -5 }, discovery }, 'spec.rateLimits.peerReservationsPerMinute in body should be greater than or equal to 0'],
    ['peerCircuitsPerMinute above 100000', { replicas: 1, rateLimits: { peerCircuitsPerMinute: 200000 }, discovery }, 'spec.rateLimits.peerCircuitsPerMinute in body should be less than or equal to 100000'],
    ['a 1 s registry TTL', { replicas: 1, discovery: { ...discovery, ttlSeconds: 1 } }, 'spec.discovery.ttlSeconds in body should be greater than or equal to 3'],
    ['an Exists toleration with a value', { replicas: 1, tolerations: [{ key: 'k', operator: 'Exists', value: 'v' }], discovery }, 'a toleration with operator Exists must not have a value'],
    ['auth required with nowhere to get the ticket keys from', { replicas: 1, auth: { required: true }, discovery }, 'spec.auth.required needs the ticket keys: set spec.discovery.p2pSecretRef'],
    ['auth without required', { replicas: 1, auth: { ticketKeysSecretRef: { name: 'keys' } }, discovery }, 'spec.auth.required: Required value'],
    ['a ticket keys URL that is not http(s)', { replicas: 1, auth: { required: true, ticketKeysUrl: 'ftp://keys.example/jwks' }, discovery }, 'spec.auth.ticketKeysUrl must be an http:// or https:// URL'],
    ['a metering interval of 0', { replicas: 1, auth: { required: true, ticketKeysUrl: 'https://keys.example/jwks', meteringIntervalSeconds: 0 }, discovery }, 'spec.auth.meteringIntervalSeconds in body should be greater than or equal to 1'],
    ['maxUnavailable 0', { replicas: 2, updateStrategy: { maxUnavailable: 0 }, discovery }, 'spec.updateStrategy.maxUnavailable must be a number of relays (at least 1) or a percentage from 1% to 100%'],
    ['maxUnavailable "0%"', { replicas: 2, updateStrategy: { maxUnavailable: '0%' }, discovery }, 'spec.updateStrategy.maxUnavailable must be a number of relays (at least 1) or a percentage'],
    ['maxUnavailable "150%"', { replicas: 2, updateStrategy: { maxUnavailable: '150%' }, discovery }, 'spec.updateStrategy.maxUnavailable must be a number of relays (at least 1) or a percentage'],
    ['maxUnavailable "two"', { replicas: 2, updateStrategy: { maxUnavailable: 'two' }, discovery }, 'spec.updateStrategy.maxUnavailable must be a number of relays (at least 1) or a percentage'],
    ['negative accountCircuitsPerMinute', { replicas: 1, auth: { required: true, ticketKeysUrl: 'https://keys.example/jwks', accountCircuitsPerMinute: -1 }, discovery }, 'spec.auth.accountCircuitsPerMinute in body should be greater than or equal to 0']
  ]
  for (const [what, spec, message] of rejected) {
    it(`rejects ${what} with its message (CEL, or the API server's for a plain range)`, async () => {
      const r = await cp.kubectl(['apply', '-f', '-'], pool('bad', spec))
      assert.notEqual(r.code, 0, `accepted: ${JSON.stringify(spec)}`)
      assert.ok(r.stderr.includes(message), `expected "${message}" in:\n${r.stderr}`)
      assert.match(r.stderr, /is invalid/)
    })
  }

  it('rejects a name longer than 50 characters, a pool without discovery and an unknown field', async () => {
    let r = await cp.kubectl(['apply', '-f', '-'], pool('a'.repeat(51), { replicas: 1, discovery }))
    assert.notEqual(r.code, 0)
    assert.ok(r.stderr.includes('a RelayPool name must be at most 50 characters'), r.stderr)
    r = await cp.kubectl(['apply', '-f', '-'], pool('nodisc', { replicas: 1 }))
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /spec\.discovery: Required value/)
    r = await cp.kubectl(['apply', '-f', '-'], pool('typo', { replicas: 1, discovery, hostport: 7373 }))
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /unknown field "spec\.hostport"/)
    r = await cp.kubectl(['apply', '-f', '-'], pool('typo2', { replicas: 1, discovery, rateLimits: { peerCircuitsPerSecond: 1 } }))
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /unknown field "spec\.rateLimits\.peerCircuitsPerSecond"/)
    r = await cp.kubectl(['apply', '-f', '-'], pool('notint', { replicas: 1, discovery, rateLimits: { peerCircuitsPerMinute: '60' } }))
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /spec\.rateLimits\.peerCircuitsPerMinute: Invalid value: "string": spec\.rateLimits\.peerCircuitsPerMinute in body must be of type integer/)
  })

  it('reports every broken rule at once', async () => {
    const r = await cp.kubectl(['apply', '-f', '-'], pool('many', { hostPort: 70000, drainSeconds: 9999, discovery }))
    assert.notEqual(r.code, 0)
    for (const m of ['set exactly one of spec.replicas', 'spec.hostPort in body should be less than or equal to 65535', 'spec.drainSeconds in body should be less than or equal to 3600']) {
      assert.ok(r.stderr.includes(m), `missing "${m}" in:\n${r.stderr}`)
    }
  })

  it('accepts examples/relaypool.yaml (kubectl apply -f, as the README shows)', async () => {
    const out = await k(cp, ['apply', '-n', 'default', '-f', '-'], EXAMPLE)
    assert.match(out, /relaypool\.pos-relay\.io\/relays created/)
    const obj = await kJson(cp, ['get', 'relaypool', 'relays', '-n', 'default'])
    assert.equal(obj.spec.replicas, 2)
    assert.equal(obj.spec.limits.circuitDataLimitBytes, 4294967296)
    // the commented connection and rate limits are valid as they stand once uncommented
    const fields = 'rateLimits|shared|ipConnectionsPerSecond|peerReservationsPerMinute|peerCircuitsPerMinute|maxConnections|maxPendingConnections|handshakeTimeoutSeconds|ipMaxConnections|peerMaxCircuits|ipMaxCircuits|circuitIdleTimeoutSeconds|maxBufferedBytes'
    const uncommented = EXAMPLE.replace(new RegExp(`^( *)# ( *)(${fields}):`, 'gm'), '$1$2$3:').replace('name: relays', 'name: relays-limited')
    assert.equal((uncommented.match(new RegExp(`^ *(${fields}):`, 'gm')) ?? []).length, 13, 'every commented limit found')
    await k(cp, ['apply', '-n', 'default', '-f', '-'], uncommented)
    const limited = await kJson(cp, ['get', 'relaypool', 'relays-limited', '-n', 'default'])
    assert.deepEqual(limited.spec.rateLimits, { shared: true, ipConnectionsPerSecond: 20, peerReservationsPerMinute: 30, peerCircuitsPerMinute: 120 })
    assert.equal(limited.spec.limits.maxPendingConnections, 256)
    await k(cp, ['delete', 'relaypool', 'relays-limited', '-n', 'default'])
  })

  it('accepts maxUnavailable as a number or a percentage, and defaults it to 1 when updateStrategy is given', async () => {
    for (const [name, value] of [['mu-int', 3], ['mu-pct', '25%'], ['mu-all', '100%']] as const) {
      await k(cp, ['apply', '-f', '-'], pool(name, { replicas: 4, updateStrategy: { maxUnavailable: value }, discovery }))
      assert.equal((await kJson(cp, ['get', 'relaypool', name, '-n', 'default'])).spec.updateStrategy.maxUnavailable, value)
      await k(cp, ['delete', 'relaypool', name, '-n', 'default'])
    }
    await k(cp, ['apply', '-f', '-'], pool('mu-default', { replicas: 4, updateStrategy: {}, discovery }))
    assert.equal((await kJson(cp, ['get', 'relaypool', 'mu-default', '-n', 'default'])).spec.updateStrategy.maxUnavailable, 1)
    await k(cp, ['delete', 'relaypool', 'mu-default', '-n', 'default'])
  })

  it('accepts a minimal pool and fills in the defaults', async () => {
    await k(cp, ['apply', '-f', '-'], pool('minimal', { replicas: 1, discovery }))
    const obj = await kJson(cp, ['get', 'relaypool', 'minimal', '-n', 'default'])
    assert.equal(obj.spec.hostPort, 7373)
    assert.equal(obj.spec.drainSeconds, 30)
    assert.equal(obj.spec.discovery.ttlSeconds, 30)
    assert.equal(obj.spec.discovery.redisUrlSecretRef.key, 'redis-url')
  })

  it('accepts a perNode pool with placement, resources, limits at their bounds and a static address on one replica', async () => {
    await k(cp, ['apply', '-f', '-'], pool('edge', {
      perNode: true,
      nodeSelector: { 'pos-relay.io/relay': 'true' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'relay', effect: 'NoSchedule' }, { operator: 'Exists' }],
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }] }] } } },
      image: 'registry.example.com/pos-relay:0.1.0',
      imagePullPolicy: 'Always',
      hostPort: 443,
      resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } },
      limits: { maxReservations: 1, reservationTtlSeconds: 86400, maxCircuits: 1000000, circuitDataLimitBytes: 0, circuitDurationSeconds: 0, maxConnections: 10000000, maxPendingConnections: 1, handshakeTimeoutSeconds: 120, ipMaxConnections: 0, peerMaxCircuits: 0, ipMaxCircuits: 1000000, circuitIdleTimeoutSeconds: 0, maxBufferedBytes: 1099511627776 },
      rateLimits: { shared: true, redisUrlSecretRef: { name: 'limits-redis' }, ipConnectionsPerSecond: 0, peerReservationsPerMinute: 100000, peerCircuitsPerMinute: 0 },
      discovery: { ...discovery, p2pSecretRef: { name: 's', key: 'k' }, ttlSeconds: 3 },
      drainSeconds: 0,
      publicAddress: { nodeAddressTypes: ['InternalIP'], nodeAnnotation: 'pos-relay.io/public-address' },
      logLevel: 'debug'
    }))
    const edge = await kJson(cp, ['get', 'relaypool', 'edge', '-n', 'default'])
    assert.equal(edge.spec.rateLimits.redisUrlSecretRef.key, 'redis-url', 'the Secret key defaults as in discovery.redisUrlSecretRef')
    assert.equal(edge.spec.rateLimits.peerCircuitsPerMinute, 0, '0 (off) is kept, not dropped')
    await k(cp, ['apply', '-f', '-'], pool('limited', { replicas: 1, limits: { maxConnections: 0, maxPendingConnections: 100000, handshakeTimeoutSeconds: 1, ipMaxConnections: 1000000 }, rateLimits: { shared: true, ipConnectionsPerSecond: 100000, peerReservationsPerMinute: 0, peerCircuitsPerMinute: 100000 }, discovery }))
    const limited = await kJson(cp, ['get', 'relaypool', 'limited', '-n', 'default'])
    assert.equal(limited.spec.rateLimits.redisUrlSecretRef, undefined, 'no rate-limit Redis of its own: the registry\'s is used')
    await k(cp, ['apply', '-f', '-'], pool('single', { replicas: 1, publicAddress: { static: 'relay-1.example.com' }, discovery }))
    await k(cp, ['apply', '-f', '-'], pool('single-ip', { replicas: 0, publicAddress: { static: '2001:db8::7' }, discovery }))
  })

  it('status is a subresource: the operator writes it there; spec writes do not touch it', async () => {
    const before = await kJson(cp, ['get', 'relaypool', 'relays', '-n', 'default'])
    const status = {
      observedGeneration: before.metadata.generation,
      desiredRelays: 2,
      readyRelays: 1,
      registeredRelays: 1,
      conditions: [
        { type: 'Ready', status: 'False', reason: 'RelaysNotReady', message: '1 of 2 relays ready', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: before.metadata.generation },
        { type: 'HostPortConflict', status: 'True', reason: 'PortInUse', message: "0/3 nodes are available: 3 node(s) didn't have free ports", lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: before.metadata.generation }
      ],
      relays: [
        { pod: 'relays-0', slot: 0, node: 'node-a', publicAddress: '203.0.113.7', peerId: '12D3KooWExample', multiaddr: '/ip4/203.0.113.7/tcp/7373/p2p/12D3KooWExample', ready: true, registered: true, phase: 'Running' },
        { pod: 'relays-1', slot: 1, ready: false, registered: false, phase: 'Unschedulable' }
      ]
    }
    await k(cp, ['patch', 'relaypool', 'relays', '-n', 'default', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })])
    const after = await kJson(cp, ['get', 'relaypool', 'relays', '-n', 'default'])
    assert.equal(after.metadata.generation, before.metadata.generation, 'a status write must not bump generation')
    assert.equal(after.status.readyRelays, 1)
    assert.equal(after.status.relays[0].peerId, '12D3KooWExample')
    // a status in a spec write is ignored
    const r = await cp.kubectl(['patch', 'relaypool', 'relays', '-n', 'default', '--type=merge', '-p', JSON.stringify({ spec: { replicas: 3 }, status: { readyRelays: 99 } })])
    assert.equal(r.code, 0, r.stderr)
    const again = await kJson(cp, ['get', 'relaypool', 'relays', '-n', 'default'])
    assert.equal(again.status.readyRelays, 1)
    assert.equal(again.metadata.generation, before.metadata.generation + 1)
    // invalid status (condition without reason) is rejected
    const bad = await cp.kubectl(['patch', 'relaypool', 'relays', '-n', 'default', '--subresource=status', '--type=merge', '-p',
      JSON.stringify({ status: { conditions: [{ type: 'Ready', status: 'Maybe', lastTransitionTime: '2026-01-01T00:00:00Z', reason: 'X', message: '' }] } })])
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /Unsupported value: "Maybe"/)
  })

  it('scale subresource: kubectl scale sets spec.replicas and reads status.replicas and status.selector; a perNode pool refuses it', async () => {
    await k(cp, ['apply', '-f', '-'], pool('scaled', { replicas: 1, discovery }))
    const selector = 'app.kubernetes.io/managed-by=pos-relay-operator,app.kubernetes.io/component=relay,pos-relay.io/pool=scaled'
    await k(cp, ['patch', 'relaypool', 'scaled', '-n', 'default', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { replicas: 1, selector } })])
    await k(cp, ['scale', 'rp', 'scaled', '-n', 'default', '--replicas', '3'])
    const scaled = await kJson(cp, ['get', 'relaypool', 'scaled', '-n', 'default'])
    assert.equal(scaled.spec.replicas, 3)
    const scale = await kJson(cp, ['get', 'relaypool', 'scaled', '-n', 'default', '--subresource=scale'])
    assert.equal(scale.kind, 'Scale')
    assert.equal(scale.spec.replicas, 3)
    assert.equal(scale.status.replicas, 1)
    assert.equal(scale.status.selector, selector)
    // --current-replicas is checked against status.replicas
    const stale = await cp.kubectl(['scale', 'rp', 'scaled', '-n', 'default', '--current-replicas', '5', '--replicas', '0'])
    assert.notEqual(stale.code, 0)
    // the CRD's rules apply to a scale write too: a perNode pool has no replicas to set
    await k(cp, ['apply', '-f', '-'], pool('everywhere', { perNode: true, discovery }))
    const r = await cp.kubectl(['scale', 'rp', 'everywhere', '-n', 'default', '--replicas', '2'])
    assert.notEqual(r.code, 0, 'a perNode pool accepted kubectl scale')
    assert.ok(r.stderr.includes('set exactly one of spec.replicas'), r.stderr)
    await k(cp, ['delete', 'relaypool', 'scaled', 'everywhere', '-n', 'default'])
  })

  it('accepts spec.auth with the ticket keys from discovery (p2pSecretRef), a URL or a Secret, and auth: required false alone', async () => {
    const specs = [
      { replicas: 0, auth: { required: true }, discovery: { ...discovery, p2pSecretRef: { name: 'p2p' } } },
      { replicas: 0, auth: { required: true, ticketKeysUrl: 'https://keys.example/api/p2p/ticket-keys', accountCircuitsPerMinute: 60, meteringIntervalSeconds: 2 }, discovery },
      { replicas: 0, auth: { required: true, ticketKeysSecretRef: { name: 'keys' }, redisSecretRef: { name: 'acct' }, tiersConfigMapRef: { name: 'tiers' } }, discovery },
      { replicas: 0, auth: { required: false }, discovery }
    ]
    for (const [i, spec] of specs.entries()) await k(cp, ['apply', '-f', '-'], pool(`auth-${i}`, spec))
    const stored = await kJson(cp, ['get', 'rp', 'auth-2', '-n', 'default'])
    assert.deepEqual(stored.spec.auth, { required: true, ticketKeysSecretRef: { name: 'keys', key: 'jwks.json' }, redisSecretRef: { name: 'acct', key: 'redis-url' }, tiersConfigMapRef: { name: 'tiers', key: 'tiers.json' } })
    const out = await k(cp, ['get', 'rp', 'auth-0', 'auth-3', '-n', 'default'])
    const [header, ...rows] = out.trim().split('\n')
    assert.deepEqual(header!.trim().split(/\s+/), ['NAME', 'DESIRED', 'READY', 'REGISTERED', 'STATUS', 'AUTH', 'AGE'])
    // no status yet: the AUTH column is the first value printed
    assert.deepEqual(rows.map((r) => r.trim().split(/\s+/).slice(0, 2)), [['auth-0', 'true'], ['auth-3', 'false']])
    await k(cp, ['delete', 'rp', ...specs.map((_s, i) => `auth-${i}`), '-n', 'default'])
  })

  it('prints the columns: desired, ready, registered, Ready condition, auth, age (and reason, host port, per-node with -o wide)', async () => {
    const out = await k(cp, ['get', 'relaypools', '-n', 'default', '-o', 'wide'])
    const [header, ...rows] = out.trim().split('\n')
    assert.deepEqual(header!.trim().split(/\s+/), ['NAME', 'DESIRED', 'READY', 'REGISTERED', 'STATUS', 'AUTH', 'REASON', 'HOST-PORT', 'PER-NODE', 'AGE'])
    const relays = rows.find((r) => r.startsWith('relays '))!.trim().split(/\s+/)
    // AUTH and PER-NODE are empty for a replicas pool without spec.auth, so the row has 8 words
    assert.deepEqual(relays.slice(0, 7), ['relays', '2', '1', '1', 'False', 'RelaysNotReady', '7373'])
    assert.equal(relays.length, 8)
    const edge = rows.find((r) => r.startsWith('edge '))!.trim().split(/\s+/)
    // no status yet: only name, host port, per-node and age are printed
    assert.deepEqual(edge.slice(0, 3), ['edge', '443', 'true'])
    const narrow = await k(cp, ['get', 'rp', '-n', 'default'])
    assert.deepEqual(narrow.split('\n')[0]!.trim().split(/\s+/), ['NAME', 'DESIRED', 'READY', 'REGISTERED', 'STATUS', 'AUTH', 'AGE'])
    // the category: kubectl get pos-relay
    assert.match(await k(cp, ['get', 'pos-relay', '-n', 'default']), /^relays\s+2\s+1\s+1\s+False/m)
  })

  it('kubectl explain shows the field docs', async () => {
    const out = await k(cp, ['explain', 'relaypool.spec.limits'])
    assert.match(out, /circuitDataLimitBytes/)
    assert.match(out, /Per-relay limits/)
    const rl = await k(cp, ['explain', 'relaypool.spec.rateLimits'])
    for (const f of ['shared', 'redisUrlSecretRef', 'ipConnectionsPerSecond', 'peerReservationsPerMinute', 'peerCircuitsPerMinute']) assert.match(rl, new RegExp(`^\\s+${f}\\s`, 'm'))
    assert.match(rl, /Unset fields keep the relay's defaults/)
    const auth = await k(cp, ['explain', 'relaypool.spec.auth'])
    for (const f of ['required', 'ticketKeysSecretRef', 'ticketKeysUrl', 'redisSecretRef', 'tiersConfigMapRef', 'accountCircuitsPerMinute', 'meteringIntervalSeconds']) assert.match(auth, new RegExp(`^\\s+${f}\\s`, 'm'))
  })
})
