import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ANNOTATIONS, computeDesired } from '@pos-relay/operator'
import { compute, identity, node, NOW, observe, pool, relayPod } from './fixtures.ts'

const cond = (d: any, type: string) => d.status.conditions.find((c: any) => c.type === type)
const nodesOf = (pods: any[]) => pods.map((p) => p.metadata.annotations[ANNOTATIONS.node])

describe('computeDesired: a new pool', () => {
  const p = pool({ replicas: 2 })
  const nodes = [node('n1'), node('n2'), node('n3')]
  const d = compute({ pool: p, nodes })

  it('creates one identity Secret and one pod per slot, on distinct nodes', () => {
    assert.deepEqual(d.createSecrets.map((s: any) => s.metadata.name), ['edge-0-identity', 'edge-1-identity'])
    assert.deepEqual(d.createPods.map((x: any) => x.metadata.name), ['edge-0', 'edge-1'])
    const placed = nodesOf(d.createPods)
    assert.equal(new Set(placed).size, 2)
    for (const n of placed) assert.ok(['n1', 'n2', 'n3'].includes(n))
    assert.deepEqual(d.deletePods, [])
    assert.deepEqual(d.registrations, [])
  })

  it('pods carry hostPort 7373 on containerPort 7373, a named metrics port 9373, probes and Prometheus annotations', () => {
    const pod: any = d.createPods[0]
    const c = pod.spec.containers[0]
    assert.deepEqual(c.ports[0], { name: 'relay', containerPort: 7373, hostPort: 7373, protocol: 'TCP' })
    assert.deepEqual(c.ports[1], { name: 'metrics', containerPort: 9373, protocol: 'TCP' })
    assert.deepEqual(c.ports[2], { name: 'relay-quic', containerPort: 7373, hostPort: 7373, protocol: 'UDP' })
    assert.equal(c.readinessProbe.httpGet.path, '/readyz')
    assert.equal(c.readinessProbe.httpGet.port, 'metrics')
    assert.equal(c.livenessProbe.httpGet.path, '/healthz')
    assert.equal(pod.metadata.annotations['prometheus.io/scrape'], 'true')
    assert.equal(pod.metadata.annotations['prometheus.io/port'], '9373')
    assert.equal(c.image, 'pos-relay:test')
  })

  it('the readiness probe tolerates a slow answer: a 1.5 s stall is within its timeout, and one failed probe does not make the pod not-Ready', () => {
    const probe = d.createPods[0]!.spec!.containers[0]!.readinessProbe!
    assert.deepEqual(probe, { httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3, successThreshold: 1 })
    assert.ok(probe.timeoutSeconds! * 1000 > 1500)
    assert.ok(probe.failureThreshold! >= 2)
    // a hung relay still leaves discovery in well under a minute
    assert.ok(probe.failureThreshold! * probe.periodSeconds! + probe.timeoutSeconds! <= 30)
  })

  it('pods are owned by the pool (cascade deletion) and labelled for the chart\'s PodMonitor', () => {
    const pod: any = d.createPods[0]
    assert.deepEqual(pod.metadata.ownerReferences, [{ apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', name: 'edge', uid: 'uid-edge', controller: true, blockOwnerDeletion: true }])
    assert.equal(pod.metadata.labels['app.kubernetes.io/name'], 'pos-relay')
    assert.equal(pod.metadata.labels['app.kubernetes.io/component'], 'relay')
    assert.equal(pod.metadata.labels['app.kubernetes.io/managed-by'], 'pos-relay-operator')
    assert.equal(pod.metadata.labels['pos-relay.io/pool'], 'edge')
    assert.equal(pod.metadata.namespace, 'relays')
    const s: any = d.createSecrets[0]
    assert.equal(s.metadata.ownerReferences[0].uid, 'uid-edge')
    assert.equal(s.immutable, true)
  })

  it('the relay runs `pos-relay run` with the Secret\'s config and announces the node address with the hostPort', () => {
    const pod: any = d.createPods[0]
    const n = pod.metadata.annotations[ANNOTATIONS.node]
    const ip = nodes.find((x) => x.metadata.name === n).status.addresses[0].address
    const args = pod.spec.containers[0].args
    assert.deepEqual(args.slice(0, 5), ['run', '--config', '/etc/pos-relay/config.json', '--announce', `/ip4/${ip}/tcp/7373`])
    assert.equal(pod.spec.volumes[0].secret.secretName, `${pod.metadata.name}-identity`)
    assert.equal(pod.spec.containers[0].volumeMounts[0].mountPath, '/etc/pos-relay')
    assert.ok(!args.includes('--api-url'), 'the pod must not self-register')
  })

  it('pins each pod to its node through node affinity (the scheduler still checks ports)', () => {
    const pod: any = d.createPods[0]
    const n = pod.metadata.annotations[ANNOTATIONS.node]
    assert.deepEqual(pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution, {
      nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [n] }] }]
    })
    assert.equal(pod.spec.nodeName, undefined)
  })

  it('status: desired 2, ready 0; Ready=False, Progressing=True, with observedGeneration', () => {
    assert.equal(d.status.desiredRelays, 2)
    assert.equal(d.status.readyRelays, 0)
    assert.equal(d.status.registeredRelays, 0)
    assert.equal(d.status.observedGeneration, 1)
    assert.equal(cond(d, 'Ready').status, 'False')
    assert.equal(cond(d, 'Ready').reason, 'RelaysNotReady')
    assert.equal(cond(d, 'Progressing').status, 'True')
    assert.equal(cond(d, 'Progressing').reason, 'CreatingRelays')
    assert.equal(cond(d, 'Degraded').status, 'False')
    assert.equal(cond(d, 'HostPortConflict').status, 'False')
    for (const c of d.status.conditions!) {
      assert.equal(c.observedGeneration, 1)
      assert.equal(c.lastTransitionTime, '2026-01-01T00:00:00Z')
    }
    assert.equal(d.statusChanged, true)
  })

  it('asks for the finalizer only when it is missing', () => {
    assert.equal(d.addFinalizer, false)
    assert.equal(compute({ pool: pool({}, { finalizers: [] }), nodes }).addFinalizer, true)
  })

  it('is deterministic', () => {
    assert.deepEqual(compute({ pool: p, nodes }), d)
    assert.deepEqual(compute({ pool: p, nodes: [...nodes].reverse() }).createPods, d.createPods)
  })
})

describe('computeDesired: registry', () => {
  const p = pool({ replicas: 3 })
  const nodes = [node('n1'), node('n2', { external: '203.0.113.2' }), node('n3')]
  const secrets = [identity(p, 0, 'n1'), identity(p, 1, 'n2'), identity(p, 2, 'n3')]

  it('registers every Ready relay as <namespace>:<pool>:<slot> with its full multiaddr', () => {
    const pods = [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2', 'ready', '203.0.113.2'), relayPod(p, 2, 'n3', 'running')]
    const d = compute({ pool: p, nodes, pods, secrets })
    assert.deepEqual(d.registrations, [
      { id: 'relays:edge:0', peer_id: '12D3KooWPeer0', addrs: ['/ip4/10.0.0.1/tcp/7373/p2p/12D3KooWPeer0', '/ip4/10.0.0.1/udp/7373/quic-v1/p2p/12D3KooWPeer0'], meta: { managed_by: 'pos-relay-operator', namespace: 'relays', pool: 'edge', slot: '0', pod: 'edge-0', node: 'n1' } },
      { id: 'relays:edge:1', peer_id: '12D3KooWPeer1', addrs: ['/ip4/203.0.113.2/tcp/7373/p2p/12D3KooWPeer1', '/ip4/203.0.113.2/udp/7373/quic-v1/p2p/12D3KooWPeer1'], meta: { managed_by: 'pos-relay-operator', namespace: 'relays', pool: 'edge', slot: '1', pod: 'edge-1', node: 'n2' } }
    ])
    assert.equal(d.status.readyRelays, 2)
    assert.equal(cond(d, 'Ready').reason, 'RelaysNotReady')
    const r = d.status.relays!.find((x) => x.pod === 'edge-1')!
    assert.deepEqual(r, { pod: 'edge-1', slot: 1, node: 'n2', publicAddress: '203.0.113.2', peerId: '12D3KooWPeer1', multiaddr: '/ip4/203.0.113.2/tcp/7373/p2p/12D3KooWPeer1', ready: true, registered: false, phase: 'Running' })
  })

  it('terminating, not-Ready and failed relays are not registered', () => {
    const pods = [relayPod(p, 0, 'n1', 'terminating'), relayPod(p, 1, 'n2', 'running', '203.0.113.2'), relayPod(p, 2, 'n3', 'failed')]
    const d = compute({ pool: p, nodes, pods, secrets })
    assert.deepEqual(d.registrations, [])
    assert.deepEqual(d.deletePods.map((x) => [x.name, x.reason]), [['edge-2', 'pod Failed']])
    assert.equal(d.status.relays!.find((x) => x.pod === 'edge-0')!.phase, 'Draining')
  })

  it('a relay is registered with the key it runs with; a pod whose Secret got a new key is rolled', () => {
    const p1 = pool({ replicas: 1 })
    const pod = relayPod(p1, 0, 'n1')
    pod.metadata.annotations[ANNOTATIONS.peerId] = '12D3KooWOldKey'
    const d = compute({ pool: p1, nodes, pods: [pod], secrets: [identity(p1, 0, 'n1', '12D3KooWNewKey')] })
    assert.deepEqual(d.deletePods.map((x) => [x.name, x.reason]), [['edge-0', 'outdated']])
    assert.deepEqual(d.registrations, [], 'deregistered before it is replaced')
    assert.equal(d.status.relays![0]!.peerId, '12D3KooWOldKey')
    const fresh = compute({ pool: p1, nodes, secrets: [identity(p1, 0, 'n1', '12D3KooWNewKey')] })
    assert.equal((fresh.createPods[0] as any).metadata.annotations[ANNOTATIONS.peerId], '12D3KooWNewKey')
    const noKeyYet = compute({ pool: p1, nodes })
    assert.equal((noKeyYet.createPods[0] as any).metadata.annotations[ANNOTATIONS.peerId], undefined, 'the applier adds it when it creates the key')
    assert.equal((fresh.createPods[0] as any).metadata.annotations[ANNOTATIONS.templateHash], (noKeyYet.createPods[0] as any).metadata.annotations[ANNOTATIONS.templateHash], 'the key is not part of the template hash')
  })

  it('a relay without its peer id yet (Secret not observed) is not registered', () => {
    const d = compute({ pool: p, nodes, pods: [relayPod(p, 0, 'n1')], secrets: [] })
    assert.deepEqual(d.registrations, [])
  })

  it('all ready and registered → Ready=True, Progressing=False, registeredRelays counts the registry', () => {
    const pods = [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2', 'ready', '203.0.113.2'), relayPod(p, 2, 'n3')]
    const registered = new Set(['relays:edge:0', 'relays:edge:1', 'relays:edge:2', 'relays:other:0'])
    const d = compute({ pool: p, nodes, pods, secrets, registry: { configured: true, registered } })
    assert.equal(d.status.registeredRelays, 3)
    assert.equal(cond(d, 'Ready').status, 'True')
    assert.equal(cond(d, 'Ready').reason, 'AllRelaysReady')
    assert.equal(cond(d, 'Progressing').status, 'False')
    assert.equal(cond(d, 'Progressing').reason, 'Complete')
    assert.ok(d.status.relays!.every((r) => r.registered === true))
    const partly = compute({ pool: p, nodes, pods, secrets, registry: { configured: true, registered: new Set(['relays:edge:0']) } })
    assert.equal(cond(partly, 'Ready').reason, 'RelaysNotRegistered')
  })

  it('registry unreachable or not configured → Degraded', () => {
    let d = compute({ pool: p, nodes, registry: { configured: true, error: 'register relays:edge:0: connect ECONNREFUSED', registered: new Set() } })
    assert.equal(cond(d, 'Degraded').status, 'True')
    assert.equal(cond(d, 'Degraded').reason, 'RegistryUnavailable')
    d = compute({ pool: p, nodes, registry: { configured: false, error: 'Secret relays/disc not found', registered: new Set() } })
    assert.equal(cond(d, 'Degraded').reason, 'RegistryNotConfigured')
    assert.match(cond(d, 'Degraded').message, /not found/)
  })
})

describe('computeDesired: updates, scale-down, failures', () => {
  const p = pool({ replicas: 2 })
  const nodes = [node('n1'), node('n2'), node('n3')]
  const secrets = [identity(p, 0, 'n1'), identity(p, 1, 'n2')]

  it('scale down deletes the surplus slot (deregistered first) and its Secret once the pod is gone', () => {
    const p1 = pool({ replicas: 1 })
    const pods = [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2')]
    const d = compute({ pool: p1, nodes, pods, secrets })
    assert.deepEqual(d.deletePods.map((x) => [x.name, x.reason]), [['edge-1', 'scaled down']])
    assert.deepEqual(d.registrations.map((r) => r.id), ['relays:edge:0'])
    assert.deepEqual(d.deleteSecrets, [])
    const after = compute({ pool: p1, nodes, pods: [pods[0]], secrets })
    assert.deepEqual(after.deleteSecrets, [{ name: 'edge-1-identity', uid: 'secret-uid-1' }])
  })

  it('a spec change replaces Ready relays one at a time (never two down at once)', () => {
    const pods = [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2')]
    const changed = pool({ replicas: 2, image: 'pos-relay:v2' })
    const d = compute({ pool: changed, nodes, pods, secrets })
    assert.deepEqual(d.deletePods.map((x) => [x.name, x.reason]), [['edge-0', 'outdated']])
    assert.equal(cond(d, 'Progressing').reason, 'UpdatingRelays')
    // while slot 0 is being replaced, slot 1 waits
    const d2 = compute({ pool: changed, nodes, pods: [pods[1]], secrets })
    assert.deepEqual(d2.deletePods, [])
    assert.deepEqual(d2.createPods.map((x: any) => x.metadata.name), ['edge-0'])
    assert.equal((d2.createPods[0] as any).spec.containers[0].image, 'pos-relay:v2')
  })

  it('outdated relays that are not Ready are replaced at once', () => {
    const pods = [relayPod(p, 0, 'n1', 'running'), relayPod(p, 1, 'n2', 'pending')]
    const d = compute({ pool: pool({ replicas: 2, image: 'pos-relay:v2' }), nodes, pods, secrets })
    assert.deepEqual(d.deletePods.map((x) => x.name).sort(), ['edge-0', 'edge-1'])
  })

  it('a terminating pod blocks re-creation of its slot until it is gone; the slot keeps its node meanwhile', () => {
    const d = compute({ pool: p, nodes, pods: [relayPod(p, 0, 'n1', 'terminating'), relayPod(p, 1, 'n2')], secrets })
    assert.deepEqual(d.createPods, [])
    assert.deepEqual(d.deletePods, [])
    assert.deepEqual(d.updateSecrets, [], 'the remembered node stays')
    assert.deepEqual(d.slots.map((x) => [x.slot, x.node]), [[0, 'n1'], [1, 'n2']])
    assert.equal(cond(d, 'Progressing').reason, 'DrainingRelays')
    const gone = compute({ pool: p, nodes, pods: [relayPod(p, 1, 'n2')], secrets })
    assert.deepEqual(nodesOf(gone.createPods), ['n1'])
  })

  it('a pod left by an earlier pool of the same name is deleted', () => {
    const old = relayPod(p, 0, 'n1')
    old.metadata.ownerReferences[0].uid = 'uid-old'
    const d = compute({ pool: p, nodes, pods: [old], secrets })
    assert.ok(d.deletePods.some((x) => x.name === 'edge-0' && /earlier pool/.test(x.reason)))
  })

  it('hostPort taken (scheduler: "didn\'t have free ports") → HostPortConflict PortInUse, not silently Pending', () => {
    const pods = [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2', 'portconflict')]
    const d = compute({ pool: p, nodes, pods, secrets })
    const c = cond(d, 'HostPortConflict')
    assert.equal(c.status, 'True')
    assert.equal(c.reason, 'PortInUse')
    assert.match(c.message, /edge-1 on n2: .*didn't have free ports/)
    assert.equal(d.status.relays!.find((r) => r.pod === 'edge-1')!.phase, 'Unschedulable')
    assert.deepEqual(d.deletePods, [])
  })

  it('kubelet rejection for ports (phase Failed, reason NodePorts) is a HostPortConflict too', () => {
    const pod = relayPod(p, 1, 'n2', 'failed')
    pod.status = { phase: 'Failed', reason: 'NodePorts', message: 'Pod was rejected: node(s) didn\'t have free ports for the requested pod ports' }
    const d = compute({ pool: p, nodes, pods: [relayPod(p, 0, 'n1'), pod], secrets })
    assert.equal(cond(d, 'HostPortConflict').reason, 'PortInUse')
  })

  it('a crash-looping relay → Degraded RelaysFailing', () => {
    const d = compute({ pool: p, nodes, pods: [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2', 'crashloop')], secrets })
    assert.equal(cond(d, 'Degraded').reason, 'RelaysFailing')
    assert.match(cond(d, 'Degraded').message, /CrashLoopBackOff/)
  })

  it('no image → no pods, Degraded ImageNotSet; the operator default image applies', () => {
    const noImage = pool({ replicas: 1, image: undefined })
    let d = compute({ pool: noImage, nodes })
    assert.deepEqual(d.createPods, [])
    assert.equal(cond(d, 'Degraded').reason, 'ImageNotSet')
    d = compute({ pool: noImage, nodes, defaults: { image: 'ghcr.example/pos-relay:1', imagePullPolicy: 'Never' } })
    assert.equal((d.createPods[0] as any).spec.containers[0].image, 'ghcr.example/pos-relay:1')
    assert.equal((d.createPods[0] as any).spec.containers[0].imagePullPolicy, 'Never')
  })

  it('replicas 0 → Ready=True ScaledToZero', () => {
    const d = compute({ pool: pool({ replicas: 0 }), nodes })
    assert.equal(cond(d, 'Ready').status, 'True')
    assert.equal(cond(d, 'Ready').reason, 'ScaledToZero')
  })
})

describe('computeDesired: status and conditions over time', () => {
  const p = pool({ replicas: 1 })
  const nodes = [node('n1')]
  const secrets = [identity(p, 0, 'n1')]

  it('an unchanged world yields an unchanged status (no write), later too', () => {
    const first = compute({ pool: p, nodes, pods: [relayPod(p, 0, 'n1')], secrets, registry: { configured: true, registered: new Set(['relays:edge:0']) } })
    const withStatus = { ...p, status: first.status }
    const again = computeDesired(observe({ pool: withStatus, nodes, pods: [relayPod(p, 0, 'n1')], secrets, registry: { configured: true, registered: new Set(['relays:edge:0']) }, now: NOW + 3_600_000 }))
    assert.equal(again.statusChanged, false)
    assert.deepEqual(again.status, first.status)
  })

  it('lastTransitionTime moves only for conditions whose status flipped; observedGeneration follows the generation', () => {
    const first = compute({ pool: p, nodes, pods: [relayPod(p, 0, 'n1', 'running')], secrets })
    const later = NOW + 60_000
    const p2 = { ...pool({ replicas: 1 }, { generation: 2 }), status: first.status }
    const next = computeDesired(observe({ pool: p2, nodes, pods: [relayPod(p, 0, 'n1')], secrets, registry: { configured: true, registered: new Set(['relays:edge:0']) }, now: later }))
    const ready = cond(next, 'Ready')
    assert.equal(ready.status, 'True')
    assert.equal(ready.lastTransitionTime, '2026-01-01T00:01:00Z')
    const degraded = cond(next, 'Degraded')
    assert.equal(degraded.status, 'False')
    assert.equal(degraded.lastTransitionTime, '2026-01-01T00:00:00Z', 'not flipped: time kept')
    for (const c of next.status.conditions!) assert.equal(c.observedGeneration, 2)
    assert.equal(next.status.observedGeneration, 2)
    assert.equal(next.statusChanged, true)
  })
})

describe('computeDesired: the Ready condition names what is wrong', () => {
  const p = pool({ replicas: 2 })

  it('a drained node: the leaving pod and its cordoned node are named, and the slot waits for a free node', () => {
    // n2 is cordoned and its relay evicted (terminating); n1 holds the other relay; no third node
    const pods = [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2', 'terminating')]
    const secrets = [identity(p, 0, 'n1'), identity(p, 1, 'n2')]
    const d = compute({ pool: p, nodes: [node('n1'), node('n2', { unschedulable: true })], pods, secrets })
    const ready = cond(d, 'Ready')
    assert.equal(ready.status, 'False')
    assert.equal(ready.reason, 'RelaysNotReady')
    assert.match(ready.message, /^1\/2 relays ready, 0 registered: /)
    assert.match(ready.message, /edge-1 leaving n2 \(node is cordoned\)/)
    assert.match(ready.message, /1 waiting for a free node; not placeable: n2 \(node is cordoned\)/)
  })

  it('a pod that is not ready is named with its node', () => {
    const d = compute({ pool: p, nodes: [node('n1'), node('n2')], pods: [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2', 'running')], secrets: [identity(p, 0, 'n1'), identity(p, 1, 'n2')] })
    assert.match(cond(d, 'Ready').message, /: edge-1 not ready on n2$/)
  })
})
