// computeDesired: where relays go (nodes, addresses, per-node mode, privileged hostPorts).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ANNOTATIONS, computeDesired, transportAddr } from '@pos-relay/operator'
import { compute, identity, node, observe, pool, relayPod } from './fixtures.ts'

const cond = (d: any, type: string) => d.status.conditions.find((c: any) => c.type === type)
const nodesOf = (pods: any[]) => pods.map((p) => p.metadata.annotations[ANNOTATIONS.node])

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
