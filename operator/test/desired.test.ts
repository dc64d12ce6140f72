import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ANNOTATIONS, computeDesired, hashOf, LABELS, relayArgs, transportAddr } from '@pos-relay/operator'
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

describe('computeDesired: placement', () => {
  it('at most one relay per node: more replicas than nodes → HostPortConflict InsufficientNodes', () => {
    const d = compute({ pool: pool({ replicas: 3 }), nodes: [node('n1'), node('n2')] })
    assert.equal(d.createPods.length, 2)
    assert.equal(new Set(nodesOf(d.createPods)).size, 2)
    assert.equal(d.status.desiredRelays, 3)
    const c = cond(d, 'HostPortConflict')
    assert.equal(c.status, 'True')
    assert.equal(c.reason, 'InsufficientNodes')
    assert.match(c.message, /1 of 3 relays have no node/)
  })

  it('a slot returns to the node its identity Secret remembers', () => {
    const p = pool({ replicas: 1 })
    const nodes = [node('n1'), node('n2'), node('n3'), node('n4')]
    for (const remembered of ['n1', 'n2', 'n3', 'n4']) {
      const d = compute({ pool: p, nodes, secrets: [identity(p, 0, remembered)] })
      assert.deepEqual(nodesOf(d.createPods), [remembered])
      assert.deepEqual(d.createSecrets, [])
      assert.deepEqual(d.updateSecrets, [])
    }
  })

  it('records a new node on the identity Secret (keeping its key)', () => {
    const p = pool({ replicas: 1 })
    const d = compute({ pool: p, nodes: [node('n2')], secrets: [identity(p, 0, 'gone-node')] })
    assert.deepEqual(nodesOf(d.createPods), ['n2'])
    assert.equal(d.updateSecrets.length, 1)
    const s: any = d.updateSecrets[0]
    assert.equal(s.metadata.annotations[ANNOTATIONS.node], 'n2')
    assert.equal(s.metadata.annotations[ANNOTATIONS.peerId], '12D3KooWPeer0')
    assert.deepEqual(s.data, { 'config.json': 'e30=' })
  })

  it('avoids nodes where another pool runs a relay on the same hostPort, not on another port', () => {
    const other = pool({ replicas: 1, hostPort: 7373 }, { name: 'other', uid: 'uid-other' })
    const otherPod = relayPod(other, 0, 'n1')
    const nodes = [node('n1'), node('n2')]
    const p = pool({ replicas: 2 })
    const d = compute({ pool: p, nodes, otherRelayPods: [otherPod] })
    assert.deepEqual(nodesOf(d.createPods), ['n2'])
    assert.equal(cond(d, 'HostPortConflict').reason, 'InsufficientNodes')
    assert.match(cond(d, 'HostPortConflict').message, /1 of them already run another relay on port 7373/)
    const d2 = compute({ pool: pool({ replicas: 2, hostPort: 7474 }), nodes, otherRelayPods: [otherPod] })
    assert.equal(d2.createPods.length, 2)
  })

  it('spreads pools over nodes (rendezvous hashing by pool uid)', () => {
    const nodes = Array.from({ length: 10 }, (_, i) => node(`n${i}`))
    const used = new Set<string>()
    for (let i = 0; i < 20; i++) {
      const d = compute({ pool: pool({ replicas: 1 }, { name: `p${i}`, uid: `uid-${i}` }), nodes })
      used.add(nodesOf(d.createPods)[0])
    }
    assert.ok(used.size >= 5, `20 single-relay pools used only ${used.size} of 10 nodes`)
  })

  it('keeps a running relay where it is', () => {
    const p = pool({ replicas: 2 })
    const nodes = [node('n1'), node('n2'), node('n3')]
    const pods = [relayPod(p, 0, 'n3'), relayPod(p, 1, 'n1')]
    const d = compute({ pool: p, nodes, pods, secrets: [identity(p, 0, 'n3'), identity(p, 1, 'n1')] })
    assert.deepEqual(d.createPods, [])
    assert.deepEqual(d.deletePods, [])
    assert.deepEqual(d.updateSecrets, [])
    assert.deepEqual(d.slots.map((s) => [s.slot, s.node]), [[0, 'n3'], [1, 'n1']])
  })

  it('nodeSelector, required node affinity and taints decide eligibility', () => {
    const nodes = [
      node('n1', { labels: { relay: 'yes' } }),
      node('n2', { labels: { relay: 'no' } }),
      node('n3', { labels: { relay: 'yes' }, taints: [{ key: 'dedicated', value: 'relay', effect: 'NoSchedule' }] }),
      node('n4', { labels: { relay: 'yes', zone: 'b' } })
    ]
    const base = { perNode: true, replicas: undefined, nodeSelector: { relay: 'yes' } }
    let d = compute({ pool: pool(base), nodes })
    assert.deepEqual(nodesOf(d.createPods).sort(), ['n1', 'n4'])
    d = compute({ pool: pool({ ...base, tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'relay', effect: 'NoSchedule' }] }), nodes })
    assert.deepEqual(nodesOf(d.createPods).sort(), ['n1', 'n3', 'n4'])
    d = compute({ pool: pool({ ...base, tolerations: [{ operator: 'Exists' }] }), nodes })
    assert.deepEqual(nodesOf(d.createPods).sort(), ['n1', 'n3', 'n4'])
    d = compute({
      pool: pool({ ...base, affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }] } } } }),
      nodes
    })
    assert.deepEqual(nodesOf(d.createPods), ['n4'])
    const pod: any = d.createPods[0]
    assert.deepEqual(pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms, [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n4'] }] }])
    assert.deepEqual(pod.spec.nodeSelector, { relay: 'yes' })
  })

  it('keeps the pool\'s pod (anti-)affinity and preferred node terms in the pod', () => {
    const affinity = {
      nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'a', operator: 'Exists' }] } }] },
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'x' } } }] }
    }
    const d = compute({ pool: pool({ replicas: 1, affinity }), nodes: [node('n1')] })
    const a: any = (d.createPods[0] as any).spec.affinity
    assert.deepEqual(a.podAntiAffinity, affinity.podAntiAffinity)
    assert.deepEqual(a.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution, affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution)
  })

  it('a relay whose node stops matching is replaced on another node, after the old pod is gone', () => {
    const p = pool({ replicas: 1, nodeSelector: { relay: 'yes' } })
    const pod = relayPod(p, 0, 'n1')
    const nodes = [node('n1', { labels: { relay: 'no' } }), node('n2', { labels: { relay: 'yes' } })]
    const d = compute({ pool: p, nodes, pods: [pod], secrets: [identity(p, 0, 'n1')] })
    assert.deepEqual(d.deletePods.map((x) => x.name), ['edge-0'])
    assert.equal(d.deletePods[0]!.uid, 'pod-uid-0')
    assert.deepEqual(d.createPods, [], 'same name: wait until the old pod is gone')
    assert.deepEqual(d.registrations, [], 'deregistered before it is deleted')
    const d2 = compute({ pool: p, nodes, pods: [], secrets: [identity(p, 0, 'n1')] })
    assert.deepEqual(nodesOf(d2.createPods), ['n2'])
  })
})

describe('computeDesired: public addresses', () => {
  const one = (spec: Record<string, unknown>, n: any) => {
    const d = compute({ pool: pool({ replicas: 1, ...spec }), nodes: [n] })
    return (d.createPods[0] as any)?.spec.containers[0].args[4]
  }
  it('ExternalIP, else InternalIP', () => {
    assert.equal(one({}, node('n1', { external: '203.0.113.7', internal: '10.0.0.1' })), '/ip4/203.0.113.7/tcp/7373')
    assert.equal(one({}, node('n1', { internal: '10.0.0.9' })), '/ip4/10.0.0.9/tcp/7373')
  })
  it('a node annotation wins when present; nodeAddressTypes reorders', () => {
    const n = node('n1', { external: '203.0.113.7', annotations: { 'pos-relay.io/public-address': '198.51.100.1' } })
    assert.equal(one({ publicAddress: { nodeAnnotation: 'pos-relay.io/public-address' } }, n), '/ip4/198.51.100.1/tcp/7373')
    assert.equal(one({ publicAddress: { nodeAnnotation: 'other' } }, n), '/ip4/203.0.113.7/tcp/7373')
    assert.equal(one({ publicAddress: { nodeAddressTypes: ['InternalIP'] } }, n), '/ip4/10.0.0.1/tcp/7373')
  })
  it('an unusable annotation (a port, garbage, link-local, unspecified) places no relay on that node and says why; no fallback to other addresses', () => {
    const ann = { publicAddress: { nodeAnnotation: 'pos-relay.io/public-address' } }
    for (const [value, why] of [['203.0.113.7:7373', /not an IP address or DNS name \(no port/], ['not an address!', /not an IP address or DNS name/], ['169.254.169.254', /link-local/], ['0.0.0.0', /unspecified/]] as const) {
      const n = node('n1', { external: '203.0.113.9', annotations: { 'pos-relay.io/public-address': value } })
      const d = compute({ pool: pool({ replicas: 1, ...ann }), nodes: [n] })
      assert.deepEqual(d.createPods, [], `${value}: no relay pod`)
      const msg = cond(d, 'Ready').message as string
      assert.match(msg, /annotation pos-relay\.io\/public-address/, `${value}: ${msg}`)
      assert.match(msg, why, `${value}: ${msg}`)
    }
  })

  it('static address, IPv6 and DNS names; the hostPort is what peers dial', () => {
    assert.equal(one({ publicAddress: { static: 'relay.example.com' }, hostPort: 8443 }, node('n1')), '/dns/relay.example.com/tcp/8443')
    assert.equal(one({}, node('n1', { external: '2001:db8::7' })), '/ip6/2001:db8::7/tcp/7373')
    assert.equal(transportAddr('192.0.2.1', 1), '/ip4/192.0.2.1/tcp/1')
  })
  it('a node without an address gets no relay', () => {
    const n = node('n1')
    n.status.addresses = []
    const d = compute({ pool: pool({ replicas: 1 }), nodes: [n] })
    assert.deepEqual(d.createPods, [])
  })
})

describe('computeDesired: per-node mode', () => {
  const p = pool({ perNode: true, replicas: undefined })

  it('one relay on every eligible node, cordoned nodes excluded', () => {
    const d = compute({ pool: p, nodes: [node('n1'), node('n2'), node('n3', { unschedulable: true })] })
    assert.deepEqual(nodesOf(d.createPods).sort(), ['n1', 'n2'])
    assert.equal(d.status.desiredRelays, 2)
  })

  it('keeps a relay on a node cordoned after it started; removes it when the node goes', () => {
    const pods = [relayPod(p, 0, 'n1'), relayPod(p, 1, 'n2')]
    const secrets = [identity(p, 0, 'n1'), identity(p, 1, 'n2')]
    let d = compute({ pool: p, nodes: [node('n1', { unschedulable: true }), node('n2')], pods, secrets })
    assert.deepEqual(d.deletePods, [])
    assert.equal(d.status.desiredRelays, 2)
    d = compute({ pool: p, nodes: [node('n2')], pods, secrets })
    assert.deepEqual(d.deletePods.map((x) => x.name), ['edge-0'])
    assert.equal(d.status.desiredRelays, 1)
  })

  it('a node that turns NotReady/unreachable keeps its relay (Kubernetes evicts after its toleration), a new node waits for Ready', () => {
    const pods = [relayPod(p, 0, 'n1')]
    const secrets = [identity(p, 0, 'n1')]
    const notReady = node('n1', { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }, { key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule' }] })
    let d = compute({ pool: p, nodes: [notReady], pods, secrets })
    assert.deepEqual(d.deletePods, [])
    d = compute({ pool: p, nodes: [node('n2', { taints: [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }] })] })
    assert.deepEqual(d.createPods, [])
    d = compute({ pool: p, nodes: [node('n1', { taints: [{ key: 'maintenance', effect: 'NoExecute' }] })], pods, secrets })
    assert.deepEqual(d.deletePods.map((x) => x.name), ['edge-0'], 'an untolerated NoExecute taint evicts')
  })

  it('a new node reuses the identity slot of a departed node (Secrets stay bounded)', () => {
    const secrets = [identity(p, 0, 'n1'), identity(p, 1, 'old')]
    const pods = [relayPod(p, 0, 'n1')]
    const d = compute({ pool: p, nodes: [node('n1'), node('n9')], pods, secrets })
    assert.deepEqual(d.createPods.map((x: any) => [x.metadata.name, x.metadata.annotations[ANNOTATIONS.node]]), [['edge-1', 'n9']])
    assert.deepEqual(d.createSecrets, [])
    assert.equal((d.updateSecrets[0] as any).metadata.annotations[ANNOTATIONS.node], 'n9')
  })

  it('a node gets back the slot that remembers it', () => {
    const secrets = [identity(p, 0, 'n2'), identity(p, 1, 'n1')]
    const d = compute({ pool: p, nodes: [node('n1'), node('n2')], secrets })
    assert.deepEqual(d.createPods.map((x: any) => [x.metadata.name, x.metadata.annotations[ANNOTATIONS.node]]).sort(), [['edge-0', 'n2'], ['edge-1', 'n1']])
  })

  it('no eligible node: Ready=False NoEligibleNodes', () => {
    const d = compute({ pool: pool({ perNode: true, replicas: undefined, nodeSelector: { x: 'y' } }), nodes: [node('n1')] })
    assert.equal(cond(d, 'Ready').reason, 'NoEligibleNodes')
    assert.equal(d.status.desiredRelays, 0)
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

  it('limits and drain become relay flags; grace period is drain + 15 s', () => {
    assert.deepEqual(c.args.slice(5), ['--port', '7373', '--metrics-port', '9373', '--max-reservations', '100', '--reservation-ttl', '600', '--max-circuits', '10', '--circuit-data-limit', '1048576', '--circuit-duration', '60', '--drain-seconds', '120'])
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
    assert.deepEqual(relayArgs(pool({ limits: undefined }), '192.0.2.1'), ['run', '--config', '/etc/pos-relay/config.json', '--announce', '/ip4/192.0.2.1/tcp/7373', '--port', '7373', '--metrics-port', '9373', '--drain-seconds', '30'])
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
  // the limit flags: after the fixed ones (up to --metrics-port), before --drain-seconds (the last field of the spec that is a flag)
  const tail = (args: string[]): string[] => args.slice(args.indexOf('--metrics-port') + 2, args.indexOf('--drain-seconds'))

  it('every connection limit and rate limit becomes its `pos-relay run` flag, with exactly the value set', () => {
    const c = container({
      limits: { maxConnections: 5000, maxPendingConnections: 64, handshakeTimeoutSeconds: 3, ipMaxConnections: 8, peerMaxCircuits: 4, ipMaxCircuits: 12, circuitIdleTimeoutSeconds: 120, maxBufferedBytes: 67108864 },
      rateLimits: { ipConnectionsPerSecond: 5, peerReservationsPerMinute: 10, peerCircuitsPerMinute: 60 }
    })
    assert.deepEqual(tail(c.args), [
      '--max-connections', '5000', '--max-pending-connections', '64', '--handshake-timeout', '3', '--ip-max-connections', '8',
      '--peer-max-circuits', '4', '--ip-max-circuits', '12', '--circuit-idle-timeout', '120', '--max-buffered-bytes', '67108864',
      '--ip-connections-per-second', '5', '--peer-reservations-per-minute', '10', '--peer-circuits-per-minute', '60'
    ])
  })

  it('0 is passed on (it means off, unlimited or derived), not dropped as unset', () => {
    const c = container({ limits: { maxConnections: 0, ipMaxConnections: 0, peerMaxCircuits: 0, ipMaxCircuits: 0, circuitIdleTimeoutSeconds: 0, maxBufferedBytes: 0 }, rateLimits: { ipConnectionsPerSecond: 0, peerReservationsPerMinute: 0, peerCircuitsPerMinute: 0 } })
    assert.deepEqual(tail(c.args), ['--max-connections', '0', '--ip-max-connections', '0', '--peer-max-circuits', '0', '--ip-max-circuits', '0', '--circuit-idle-timeout', '0', '--max-buffered-bytes', '0', '--ip-connections-per-second', '0', '--peer-reservations-per-minute', '0', '--peer-circuits-per-minute', '0'])
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

  it('changing a rate limit or turning sharing on changes the template hash (pods are rolled); unrelated fields do not', () => {
    const hash = (spec: Record<string, unknown>): string => podOf(spec).metadata.annotations[ANNOTATIONS.templateHash]
    const base = hash({ rateLimits: { peerCircuitsPerMinute: 60 } })
    assert.notEqual(hash({ rateLimits: { peerCircuitsPerMinute: 61 } }), base)
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

describe('computeDesired: hostPorts below 1024', () => {
  const nodes = [node('n1'), node('n2')]

  it('a pool on a port below 1024 gets no relay and says why, unless the operator allows that port', () => {
    for (const port of [22, 53, 80, 443]) {
      const d = compute({ pool: pool({ replicas: 2, hostPort: port }), nodes })
      assert.deepEqual(d.createPods, [], `hostPort ${port}: no pod`)
      assert.equal(cond(d, 'Degraded').reason, 'HostPortNotAllowed')
      assert.match(cond(d, 'Degraded').message, new RegExp(`hostPort ${port} is below 1024`))
      assert.equal(cond(d, 'Progressing').reason, 'HostPortNotAllowed')
    }
    const allowed = computeDesired(observe({ pool: pool({ replicas: 2, hostPort: 443 }), nodes, defaults: { image: 'pos-relay:test', allowedPrivilegedHostPorts: [443] } }))
    assert.equal(allowed.createPods.length, 2)
    assert.notEqual(cond(allowed, 'Degraded').reason, 'HostPortNotAllowed')
    const other = computeDesired(observe({ pool: pool({ replicas: 2, hostPort: 80 }), nodes, defaults: { image: 'pos-relay:test', allowedPrivilegedHostPorts: [443] } }))
    assert.deepEqual(other.createPods, [], 'only the ports named')
  })

  it('ports from 1024 up need no permission', () => {
    assert.equal(compute({ pool: pool({ replicas: 1, hostPort: 1024 }), nodes }).createPods.length, 1)
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
    assert.deepEqual(pod.spec.volumes.slice(2), [
      { name: 'ticket-keys', secret: { secretName: 'keys', defaultMode: 0o440, items: [{ key: 'public.json', path: 'jwks.json' }] } },
      { name: 'tiers', configMap: { name: 'tiers', defaultMode: 0o444, items: [{ key: 't.json', path: 'tiers.json' }] } }
    ])
    assert.deepEqual(c.volumeMounts.slice(2), [
      { name: 'ticket-keys', mountPath: '/var/run/pos-relay/ticket-keys', readOnly: true },
      { name: 'tiers', mountPath: '/var/run/pos-relay/tiers', readOnly: true }
    ])
    assert.ok(!c.args.includes('--auth'), 'auth is passed by environment')
  })

  it('per-account circuit rate and metering interval become their `pos-relay run` flags', () => {
    const c = container({ auth: { required: true, accountCircuitsPerMinute: 30, meteringIntervalSeconds: 2 } })
    const at = c.args.indexOf('--account-circuits-per-minute')
    assert.deepEqual(c.args.slice(at, at + 2), ['--account-circuits-per-minute', '30'])
    const m = c.args.indexOf('--metering-interval')
    assert.deepEqual(c.args.slice(m, m + 2), ['--metering-interval', '2'])
  })

  it('absent or required: false → nothing auth-related, and pools written before spec.auth keep their pods (same template hash)', () => {
    const hash = (spec: Record<string, unknown>): string => podOf(spec).metadata.annotations[ANNOTATIONS.templateHash]
    for (const spec of [{}, { auth: { required: false, ticketKeysSecretRef: { name: 'keys' } } }]) {
      const c = container(spec)
      assert.ok(!c.env.some((e: any) => /AUTH|TICKET|TIERS/.test(e.name)), JSON.stringify(c.env))
      assert.equal(podOf(spec).spec.volumes.length, 2)
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
