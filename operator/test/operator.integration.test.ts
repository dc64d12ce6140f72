/**
 * The operator as a process (`pos-relay operator`) against a real
 * kube-apiserver + etcd + kube-controller-manager (garbage collector) and a
 * real Redis. There is no kube-scheduler and no kubelet: the test binds pods
 * to the node the operator pinned them to and writes their status, as those
 * components would.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RelayStore } from '@pos-relay/discovery'
import { peerIdOfKeypairHex as peerIdOfKeypair } from '@pos-relay/operator'
import type { RedisServer } from '@pos-relay/testing'
import { REPO_ROOT, type ControlPlane } from '../../e2e/kube/harness.ts'
import { api, createNode, kubelet, nodeObject, pinnedNode, poolEvents, startOperator, tryApi, unschedulable, until, type OperatorProc } from './kube-helpers.ts'
import { NODE_ADDR, NS, PODS, POOLS, SECRETS, startOperatorFixture } from './operator-fixture.ts'

const POOL = 'relays' // examples/relaypool.yaml
const EXAMPLE = readFileSync(`${REPO_ROOT}/examples/relaypool.yaml`, 'utf8')

describe('operator against a real control plane', { timeout: 600_000 }, () => {
  let cp: ControlPlane
  let redis: RedisServer
  let store: RelayStore
  const operators: OperatorProc[] = []
  let stopFixture: (() => Promise<void>) | undefined
  const pool = async (): Promise<any> => await api(cp, 'GET', `${POOLS}/${POOL}`)
  const cond = (p: any, type: string): any => p.status?.conditions?.find((c: any) => c.type === type)
  const listed = async (): Promise<Map<string, any>> => new Map((await store.list()).map((r) => [r.id, r]))
  const identity = async (slot: number): Promise<{ peerId: string, config: any }> => {
    const s = await api(cp, 'GET', `${SECRETS}/${POOL}-${slot}-identity`)
    const config = JSON.parse(Buffer.from(s.data['config.json'], 'base64').toString('utf8'))
    return { peerId: s.metadata.annotations['pos-relay.io/peer-id'], config }
  }
  const kubectlGet = async (wide = false): Promise<string> => {
    const r = await cp.kubectl(['get', 'relaypools', '-n', NS, ...(wide ? ['-o', 'wide'] : [])])
    assert.equal(r.code, 0, r.stderr)
    return r.stdout
  }

  before(async () => {
    const fx = await startOperatorFixture()
    ;({ cp, redis, store } = fx)
    operators.push(fx.operator)
    stopFixture = fx.stop
  }, { timeout: 180_000 })

  after(async () => {
    for (const o of operators) await o.kill('SIGKILL')
    await stopFixture?.()
  })

  it('becomes leader on the Lease and serves /metrics, /healthz, /readyz', async () => {
    const op = operators[0]!
    await until('leader', async () => (await op.metric('leader_election_master_status', { name: 'pos-relay-operator' })) === 1)
    const lease = await api(cp, 'GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases/pos-relay-operator')
    assert.equal(lease.spec.holderIdentity, op.identity)
    assert.equal(lease.spec.leaseDurationSeconds, 3)
    const text = await op.metrics()
    for (const name of ['controller_runtime_reconcile_total', 'controller_runtime_reconcile_errors_total', 'controller_runtime_reconcile_time_seconds', 'workqueue_depth', 'workqueue_adds_total', 'workqueue_retries_total', 'leader_election_master_status', 'rest_client_requests_total', 'pos_relay_operator_relays']) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `missing ${name}`)
    }
    assert.ok((await op.metric('rest_client_requests_total', { method: 'GET', code: '200' }))! > 0)
  })

  it('kubectl apply -f examples/relaypool.yaml → pods created as specified, with identity Secrets and the finalizer', async () => {
    const r = await cp.kubectl(['apply', '-n', NS, '-f', '-'], EXAMPLE)
    assert.equal(r.code, 0, r.stderr)
    const pods = await until('two relay pods', async () => {
      const l = await api(cp, 'GET', `${PODS}?labelSelector=pos-relay.io/pool=${POOL}`)
      return l.items.length === 2 ? l.items : undefined
    })
    const p = await pool()
    assert.ok(p.metadata.finalizers.includes('pos-relay.io/registry-cleanup'))
    assert.deepEqual(pods.map((x: any) => x.metadata.name).sort(), ['relays-0', 'relays-1'])
    const nodes = new Set<string>()
    for (const pod of pods) {
      const node = pinnedNode(pod)
      nodes.add(node)
      const c = pod.spec.containers[0]
      assert.equal(c.image, 'pos-relay:test')
      assert.deepEqual(c.ports.find((x: any) => x.name === 'relay'), { name: 'relay', containerPort: 7373, hostPort: 7373, protocol: 'TCP' })
      assert.deepEqual(c.ports.find((x: any) => x.name === 'metrics'), { name: 'metrics', containerPort: 9373, protocol: 'TCP' })
      assert.equal(c.readinessProbe.httpGet.path, '/readyz')
      assert.equal(c.livenessProbe.httpGet.path, '/healthz')
      assert.deepEqual(c.args.slice(0, 5), ['run', '--config', '/etc/pos-relay/config.json', '--announce', `/ip4/${NODE_ADDR[node]}/tcp/7373`])
      // a reloadable limit: in the pool's limits ConfigMap, not a flag (changing it restarts no relay)
      assert.ok(!c.args.includes('--max-circuits'))
      assert.equal(JSON.parse((await api(cp, 'GET', `/api/v1/namespaces/${pod.metadata.namespace}/configmaps/${POOL}-limits`)).data['limits.json']).limits.max_circuits, 1024)
      assert.deepEqual(c.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } })
      assert.equal(pod.spec.terminationGracePeriodSeconds, 45)
      assert.deepEqual(pod.metadata.ownerReferences, [{ apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', name: POOL, uid: p.metadata.uid, controller: true, blockOwnerDeletion: true }])
      assert.equal(pod.metadata.labels['app.kubernetes.io/component'], 'relay')
      assert.equal(pod.metadata.annotations['prometheus.io/port'], '9373')
      assert.ok(pod.metadata.managedFields.every((m: any) => m.manager === 'pos-relay-operator'), 'one field manager')
      assert.equal(pod.spec.volumes[0].secret.secretName, `${pod.metadata.name}-identity`)
    }
    assert.equal(nodes.size, 2, 'at most one relay per node')
    for (const slot of [0, 1]) {
      const { peerId, config } = await identity(slot)
      assert.equal(peerIdOfKeypair(config.keypair), peerId, 'the Secret\'s annotation names the key it holds')
      const pod = pods.find((x: any) => x.metadata.name === `${POOL}-${slot}`)
      assert.equal(pod.metadata.annotations['pos-relay.io/peer-id'], peerId, 'the pod records the key it starts with')
      assert.equal(config.id, `${NS}:${POOL}:${slot}`)
      assert.equal(config.api_url, undefined, 'relay pods do not self-register')
    }
    const st = await until('status written', async () => { const x = await pool(); return x.status?.desiredRelays === 2 ? x : undefined })
    assert.equal(st.status.readyRelays, 0)
    assert.equal(st.status.observedGeneration, st.metadata.generation)
    assert.equal(cond(st, 'Ready').status, 'False')
    assert.equal(cond(st, 'Progressing').status, 'True')
    assert.equal(cond(st, 'HostPortConflict').status, 'False')
    assert.equal((await listed()).size, 0, 'nothing registered before the pods are Ready')
    // Events on the pool, one per pod created, as the recorder of a controller writes them
    const created = await until('RelayPodCreated events', async () => { const e = await poolEvents(cp, NS, POOL, 'RelayPodCreated'); return e.length === 2 ? e : undefined })
    for (const e of created) {
      assert.equal(e.type, 'Normal')
      assert.equal(e.action, 'Create')
      assert.equal(e.reportingController, 'pos-relay.io/operator')
      assert.equal(e.reportingInstance, operators[0]!.identity)
      assert.deepEqual(e.regarding, { apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', namespace: NS, name: POOL, uid: p.metadata.uid })
      const pod = pods.find((x: any) => x.metadata.name === e.related.name)
      assert.ok(pod != null, `related pod ${e.related.name}`)
      assert.equal(e.related.uid, pod.metadata.uid)
      assert.equal(e.note, `Created relay pod ${pod.metadata.name} on node ${pinnedNode(pod)} (public address ${NODE_ADDR[pinnedNode(pod)]})`)
    }
    const table = await cp.kubectl(['events', '-n', NS, '--for', `relaypool/${POOL}`])
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /Normal\s+RelayPodCreated\s+relaypool\/relays\s+Created relay pod relays-0/i)
  })

  it('Ready relays are registered in Redis with their public address and peer id; status and printer columns follow', async () => {
    for (const name of ['relays-0', 'relays-1']) await kubelet(cp, NS, name, true)
    const entries = await until('two registry entries', async () => { const m = await listed(); return m.size === 2 ? m : undefined })
    for (const slot of [0, 1]) {
      const pod = await api(cp, 'GET', `${PODS}/relays-${slot}`)
      const { peerId } = await identity(slot)
      const e = entries.get(`${NS}:${POOL}:${slot}`)
      assert.ok(e != null, `relays-${slot} not registered`)
      assert.equal(e.peer_id, peerId)
      // signed with the relay's key from its identity Secret: the shared secret alone cannot refresh or delete it
      assert.equal(typeof e.signed_at, 'number', `relays-${slot} registered unsigned`)
      assert.deepEqual(e.addrs, [`/ip4/${NODE_ADDR[pod.spec.nodeName]}/tcp/7373/p2p/${peerId}`, `/ip4/${NODE_ADDR[pod.spec.nodeName]}/udp/7373/quic-v1/p2p/${peerId}`])
      assert.equal(Date.parse(e.expires_at) - Date.parse(e.updated_at), 30_000)
    }
    const p = await until('Ready=True', async () => { const x = await pool(); return cond(x, 'Ready')?.status === 'True' ? x : undefined })
    assert.equal(p.status.readyRelays, 2)
    assert.equal(p.status.registeredRelays, 2)
    assert.equal(cond(p, 'Ready').reason, 'AllRelaysReady')
    assert.equal(cond(p, 'Progressing').status, 'False')
    assert.equal(cond(p, 'Degraded').status, 'False')
    for (const c of p.status.conditions) assert.equal(c.observedGeneration, p.metadata.generation)
    const r0 = p.status.relays.find((r: any) => r.pod === 'relays-0')
    assert.equal(r0.ready, true)
    assert.equal(r0.registered, true)
    assert.equal(r0.phase, 'Running')
    assert.match(r0.multiaddr, /^\/ip4\/.+\/tcp\/7373\/p2p\/12D3KooW/)
    const table = await kubectlGet()
    assert.match(table, /^NAME\s+DESIRED\s+READY\s+REGISTERED\s+STATUS\s+AUTH\s+AGE/m)
    assert.match(table, /^relays\s+2\s+2\s+2\s+True\s+\S+/m)
    const wide = await kubectlGet(true)
    assert.match(wide, /^relays\s+2\s+2\s+2\s+True\s+AllRelaysReady\s+7373\s+/m)
    const op = operators[0]!
    assert.equal(await op.metric('pos_relay_operator_relays', { state: 'registered' }), 2)
    assert.equal(await op.metric('pos_relay_operator_relays', { state: 'ready' }), 2)
    const regs = await until('RelayRegistered events', async () => { const e = await poolEvents(cp, NS, POOL, 'RelayRegistered'); return e.length === 2 ? e : undefined })
    for (const e of regs) {
      const r = [...entries.values()].find((x) => e.note.includes(x.addrs[0]))
      assert.ok(r != null, e.note)
      assert.equal(e.note, `Listed relay ${r.meta!.pod} (slot ${r.meta!.slot}, ${r.peer_id}) in discovery as ${r.addrs.join(', ')}`)
    }
    // heartbeats are not transitions: still two, later too
    assert.equal((await poolEvents(cp, NS, POOL, 'RelayRegistered')).length, 2)
  })

  it('heartbeats keep entries alive past the TTL; a spec change bumps observedGeneration without moving lastTransitionTime', async () => {
    const before = await pool()
    const readySince = cond(before, 'Ready').lastTransitionTime
    await api(cp, 'PATCH', `${POOLS}/${POOL}`, { spec: { discovery: { ttlSeconds: 5 } } }, 'application/merge-patch+json')
    const after = await until('observedGeneration', async () => { const x = await pool(); return x.status.observedGeneration === x.metadata.generation && x.metadata.generation > before.metadata.generation ? x : undefined })
    assert.equal(cond(after, 'Ready').lastTransitionTime, readySince)
    assert.equal(cond(after, 'Ready').observedGeneration, after.metadata.generation)
    const first = (await listed()).get(`${NS}:${POOL}:0`)!
    await until('TTL 5 s applied', async () => { const e = (await listed()).get(`${NS}:${POOL}:0`); return e != null && Date.parse(e.expires_at) - Date.parse(e.updated_at) === 5000 })
    await sleep(7000) // > TTL: only heartbeats keep them listed
    const later = await listed()
    assert.equal(later.size, 2)
    assert.ok(Date.parse(later.get(`${NS}:${POOL}:0`)!.updated_at) > Date.parse(first.updated_at))
    // the pods were not replaced (the TTL is not part of the pod)
    const pod = await api(cp, 'GET', `${PODS}/relays-0`)
    assert.equal(pod.status.phase, 'Running')
    await api(cp, 'PATCH', `${POOLS}/${POOL}`, { spec: { discovery: { ttlSeconds: 10 } } }, 'application/merge-patch+json')
  })

  it('a relay that turns not-Ready is deregistered within 2 s, and registered again when Ready', async () => {
    const id = `${NS}:${POOL}:1`
    const t0 = Date.now()
    await kubelet(cp, NS, 'relays-1', false)
    await until('deregistered', async () => !(await listed()).has(id), 5000, 20)
    const took = Date.now() - t0
    assert.ok(took < 2000, `deregistration took ${took} ms`)
    assert.ok((await listed()).has(`${NS}:${POOL}:0`), 'the other relay stays')
    await until('Ready=False', async () => cond(await pool(), 'Ready')?.status === 'False')
    await kubelet(cp, NS, 'relays-1', true)
    await until('registered again', async () => (await listed()).has(id), 5000, 20)
    const dereg = await until('RelayDeregistered event', async () => (await poolEvents(cp, NS, POOL, 'RelayDeregistered')).find((e) => e.note.includes('relay relays-1 ')))
    assert.match(dereg.note, /^Removed relay relays-1 \(slot 1, 12D3KooW\w+\) from discovery$/)
    // listed again with the same address: the same Event continues (a series), no second one
    await sleep(500)
    assert.equal((await poolEvents(cp, NS, POOL, 'RelayRegistered')).filter((e) => e.note.includes('relay relays-1 ')).length, 1)
  })

  it('a deleted relay pod is deregistered within 2 s; its replacement keeps the slot\'s node, peer id and address', async () => {
    const id = `${NS}:${POOL}:1`
    const before = (await listed()).get(id)!
    const oldPod = await api(cp, 'GET', `${PODS}/relays-1`)
    const t0 = Date.now()
    // graceful delete: with no kubelet the pod stays Terminating (deletionTimestamp set)
    await api(cp, 'DELETE', `${PODS}/relays-1`)
    await until('deregistered', async () => !(await listed()).has(id), 5000, 20)
    const took = Date.now() - t0
    assert.ok(took < 2000, `deregistration took ${took} ms`)
    const p = await until('Draining', async () => { const x = await pool(); return x.status.relays.find((r: any) => r.pod === 'relays-1')?.phase === 'Draining' ? x : undefined })
    assert.equal(p.status.registeredRelays, 1)
    // the kubelet confirms the deletion
    await api(cp, 'DELETE', `${PODS}/relays-1`, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0 })
    const fresh = await until('replacement pod', async () => {
      const r = await tryApi(cp, 'GET', `${PODS}/relays-1`)
      return r.status === 200 && r.body.metadata.uid !== oldPod.metadata.uid ? r.body : undefined
    })
    assert.equal(pinnedNode(fresh), oldPod.spec.nodeName, 'sticky: back to the same node')
    await kubelet(cp, NS, 'relays-1', true)
    const again = await until('registered again', async () => (await listed()).get(id), 5000, 20)
    assert.equal(again.peer_id, before.peer_id, 'stable identity')
    assert.deepEqual(again.addrs, before.addrs, 'clients\' cached address is still valid')
  })

  it('HostPortConflict: the scheduler cannot place a relay (port taken), or there are more replicas than nodes', async () => {
    await api(cp, 'PATCH', `${POOLS}/${POOL}`, { spec: { replicas: 3 } }, 'application/merge-patch+json')
    await until('relays-2', async () => (await tryApi(cp, 'GET', `${PODS}/relays-2`)).status === 200)
    await unschedulable(cp, NS, 'relays-2')
    const p = await until('HostPortConflict=True', async () => { const x = await pool(); return cond(x, 'HostPortConflict')?.status === 'True' ? x : undefined })
    assert.equal(cond(p, 'HostPortConflict').reason, 'PortInUse')
    assert.match(cond(p, 'HostPortConflict').message, /relays-2 on n\d: .*didn't have free ports/)
    assert.equal(p.status.relays.find((r: any) => r.pod === 'relays-2').phase, 'Unschedulable')
    assert.equal(p.status.desiredRelays, 3)
    // the port frees up (the scheduler binds it): the conflict clears
    await kubelet(cp, NS, 'relays-2', true)
    await until('HostPortConflict=False', async () => cond(await pool(), 'HostPortConflict')?.status === 'False')
    // more relays than nodes: the fourth has nowhere to go
    await api(cp, 'PATCH', `${POOLS}/${POOL}`, { spec: { replicas: 4 } }, 'application/merge-patch+json')
    const p4 = await until('InsufficientNodes', async () => { const x = await pool(); return cond(x, 'HostPortConflict')?.reason === 'InsufficientNodes' ? x : undefined })
    assert.equal(cond(p4, 'HostPortConflict').status, 'True')
    assert.match(cond(p4, 'HostPortConflict').message, /^1 of 4 relays have no node: 3 eligible nodes/)
    assert.equal((await tryApi(cp, 'GET', `${PODS}/relays-3`)).status, 404, 'no pod for a relay without a node')
    // back to two relays: the surplus pod is deregistered and deleted (bound pods wait for the kubelet: confirm for it)
    await api(cp, 'PATCH', `${POOLS}/${POOL}`, { spec: { replicas: 2 } }, 'application/merge-patch+json')
    await until('relays-2 deregistered', async () => !(await listed()).has(`${NS}:${POOL}:2`), 5000, 20)
    await until('relays-2 terminating', async () => { const r = await tryApi(cp, 'GET', `${PODS}/relays-2`); return r.status === 404 || r.body?.metadata?.deletionTimestamp != null })
    await cp.request('DELETE', `${PODS}/relays-2`, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0 })
    await until('HostPortConflict=False, Ready=True', async () => { const x = await pool(); return cond(x, 'HostPortConflict')?.status === 'False' && cond(x, 'Ready')?.status === 'True' })
    const conflicts = await poolEvents(cp, NS, POOL, 'HostPortConflict')
    assert.deepEqual(conflicts.map((e) => [e.type, e.action, e.note.split(':')[0]]), [['Warning', 'PlaceRelays', 'PortInUse'], ['Warning', 'PlaceRelays', 'InsufficientNodes']])
    assert.match(conflicts[0].note, /relays-2 on n\d: .*didn't have free ports/)
    assert.ok((await poolEvents(cp, NS, POOL, 'HostPortConflictResolved')).length >= 1)
    assert.ok((await poolEvents(cp, NS, POOL, 'RelayPodDeleted')).some((e) => e.note === 'Deleted relay pod relays-2: scaled down'))
    await until('identity Secret of the removed slot deleted', async () => (await tryApi(cp, 'GET', `${SECRETS}/${POOL}-2-identity`)).status === 404)
    assert.equal((await listed()).size, 2)
  })

  it('leader failover between two operator processes never deregisters a healthy relay', async () => {
    const healthy = [`${NS}:${POOL}:0`, `${NS}:${POOL}:1`]
    let polls = 0
    const gaps: string[] = []
    let watching = true
    const watcher = (async () => {
      while (watching) {
        const m = await listed()
        polls++
        for (const id of healthy) if (!m.has(id)) gaps.push(`${new Date().toISOString()} ${id} missing`)
        await sleep(25)
      }
    })()
    const a = operators[0]!
    const b = await startOperator(cp, ['--relay-image', 'pos-relay:test'])
    operators.push(b)
    await sleep(1500)
    assert.equal(await b.metric('leader_election_master_status', { name: 'pos-relay-operator' }), 0, 'standby')
    assert.equal(await a.metric('leader_election_master_status', { name: 'pos-relay-operator' }), 1)

    // 1. clean shutdown: a releases the Lease, b takes over within a retry period
    const t0 = Date.now()
    assert.equal(await a.kill('SIGTERM'), 0, 'exit 0 on SIGTERM')
    const released = await api(cp, 'GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases/pos-relay-operator')
    assert.ok(released.spec.holderIdentity === '' || released.spec.holderIdentity === b.identity)
    await until('b leads', async () => (await b.metric('leader_election_master_status', { name: 'pos-relay-operator' })) === 1, 10_000, 50)
    const cleanFailover = Date.now() - t0
    assert.ok(cleanFailover < 2500, `clean failover took ${cleanFailover} ms`)

    // 2. crash: a new standby c takes over after the lease duration, heartbeats continue
    const c = await startOperator(cp, ['--relay-image', 'pos-relay:test'])
    operators.push(c)
    await sleep(1500)
    await b.kill('SIGKILL')
    await until('c leads', async () => (await c.metric('leader_election_master_status', { name: 'pos-relay-operator' })) === 1, 15_000, 100)
    const lease = await api(cp, 'GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases/pos-relay-operator')
    assert.equal(lease.spec.holderIdentity, c.identity)
    assert.ok(lease.spec.leaseTransitions >= 2)
    // longer than the TTL (10 s) after the crash: only c's heartbeats keep the relays listed
    await sleep(11_000)
    watching = false
    await watcher
    assert.ok(polls > 50, `registry polled ${polls} times`)
    assert.deepEqual(gaps, [], 'a healthy relay was missing from the registry during failover')
    // and the new leader still acts on events
    await kubelet(cp, NS, 'relays-0', false)
    await until('c deregisters', async () => !(await listed()).has(healthy[0]!), 5000, 20)
    await kubelet(cp, NS, 'relays-0', true)
    await until('c registers', async () => (await listed()).has(healthy[0]!), 5000, 20)
    operators.splice(0, operators.length, c)
  })

  it('an operator restart (stop, start) leaves healthy relays listed and re-registers them', async () => {
    const c = operators[0]!
    assert.equal(await c.kill('SIGTERM'), 0)
    const right = await listed()
    assert.equal(right.size, 2, 'nothing removed on shutdown')
    const d = await startOperator(cp, ['--relay-image', 'pos-relay:test'])
    operators.splice(0, operators.length, d)
    const before = right.get(`${NS}:${POOL}:0`)!.updated_at
    await until('re-registered by the new process', async () => {
      const e = (await listed()).get(`${NS}:${POOL}:0`)
      return e != null && e.updated_at !== before
    }, 15_000)
    assert.equal((await listed()).size, 2)
  })

  it('Redis down → Degraded RegistryUnavailable, relays keep running; Redis back (empty) → relays listed again', async () => {
    await redis.kill()
    const p = await until('Degraded', async () => { const x = await pool(); return cond(x, 'Degraded')?.reason === 'RegistryUnavailable' ? x : undefined }, 30_000)
    assert.equal(cond(p, 'Degraded').status, 'True')
    assert.equal(p.status.readyRelays, 2)
    const op = operators[0]!
    assert.ok((await op.metric('pos_relay_operator_registry_operations_total', { result: 'error' }))! > 0)
    // the failing reconcile loop is reported, and not as one Event per retry
    const errorsBefore = (await op.metric('controller_runtime_reconcile_errors_total'))!
    await until('several failed reconciles', async () => (await op.metric('controller_runtime_reconcile_errors_total'))! >= Math.max(errorsBefore, 6), 20_000)
    const errorEvents = await until('ReconcileError event', async () => { const e = await poolEvents(cp, NS, POOL, 'ReconcileError'); return e.length > 0 ? e : undefined })
    assert.ok(errorEvents.every((e) => e.type === 'Warning' && e.action === 'Reconcile' && e.note.startsWith('registry: ')), JSON.stringify(errorEvents.map((e) => e.note)))
    const failures = (await op.metric('controller_runtime_reconcile_errors_total'))!
    assert.ok(errorEvents.length <= 3 && errorEvents.length < failures, `${errorEvents.length} Events for ${failures} failed reconciles: ${errorEvents.map((e) => e.note).join(' | ')}`)
    await redis.restart() // no persistence: the registry comes back empty
    await until('relays listed again', async () => (await listed()).size === 2, 30_000)
    await until('Degraded=False, Ready=True', async () => { const x = await pool(); return cond(x, 'Degraded')?.status === 'False' && cond(x, 'Ready')?.status === 'True' }, 30_000)
  })

  it('per-node mode: one relay on every eligible node, following nodes as they come and go', async () => {
    const spec = { perNode: true, hostPort: 7474, image: 'pos-relay:test', nodeSelector: { 'pos-relay.io/edge': 'true' }, discovery: { redisUrlSecretRef: { name: 'pos-relay-discovery' }, ttlSeconds: 10 } }
    for (const n of ['n1', 'n2']) await api(cp, 'PATCH', `/api/v1/nodes/${n}`, { metadata: { labels: { 'pos-relay.io/edge': 'true' } } }, 'application/merge-patch+json')
    await api(cp, 'POST', POOLS, { apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', metadata: { name: 'edge' }, spec })
    const pods = await until('edge pods on n1, n2', async () => {
      const l = await api(cp, 'GET', `${PODS}?labelSelector=pos-relay.io/pool=edge`)
      return l.items.length === 2 ? l.items : undefined
    })
    assert.deepEqual(pods.map(pinnedNode).sort(), ['n1', 'n2'])
    await createNode(cp, nodeObject('n4', [['ExternalIP', '192.0.2.44']], {}, { 'pos-relay.io/edge': 'true' }))
    const onN4 = await until('a relay on the new node', async () => {
      const l = await api(cp, 'GET', `${PODS}?labelSelector=pos-relay.io/pool=edge`)
      return l.items.find((p: any) => pinnedNode(p) === 'n4')
    })
    assert.equal(onN4.spec.containers[0].args[4], '/ip4/192.0.2.44/tcp/7474')
    await kubelet(cp, NS, onN4.metadata.name, true)
    await until('n4 relay registered', async () => [...(await listed()).values()].some((e) => e.addrs[0].startsWith('/ip4/192.0.2.44/tcp/7474/')))
    await api(cp, 'DELETE', '/api/v1/nodes/n4')
    await until('n4 relay deregistered', async () => ![...(await listed()).values()].some((e) => e.addrs[0].startsWith('/ip4/192.0.2.44/')), 5000, 20)
    await until('edge desired 2', async () => (await api(cp, 'GET', `${POOLS}/edge`)).status?.desiredRelays === 2)
  })

  it('deleting a pool: the finalizer deregisters its relays before the pool goes, then pods and Secrets cascade', async () => {
    const pods = (await api(cp, 'GET', `${PODS}?labelSelector=pos-relay.io/pool=${POOL}`)).items
    for (const p of pods) if (p.metadata.deletionTimestamp == null) await kubelet(cp, NS, p.metadata.name, true)
    for (const p of (await api(cp, 'GET', `${PODS}?labelSelector=pos-relay.io/pool=edge`)).items) await kubelet(cp, NS, p.metadata.name, true)
    await until('both listed, and the edge pool', async () => { const m = await listed(); return m.has(`${NS}:${POOL}:0`) && m.has(`${NS}:${POOL}:1`) && [...m.keys()].some((id) => id.startsWith(`${NS}:edge:`)) })
    // a second finalizer holds the pool after the operator's is done, to observe the order
    await api(cp, 'PATCH', `${POOLS}/${POOL}`, { metadata: { finalizers: ['pos-relay.io/registry-cleanup', 'test.pos-relay.io/hold'] } }, 'application/merge-patch+json')
    await api(cp, 'DELETE', `${POOLS}/${POOL}`)
    const held = await until('the operator removed its finalizer', async () => {
      const x = await pool()
      return x.metadata.finalizers.includes('pos-relay.io/registry-cleanup') ? undefined : x
    }, 10_000, 20)
    assert.ok(held.metadata.deletionTimestamp != null)
    assert.deepEqual([...(await listed()).keys()].filter((id) => id.startsWith(`${NS}:${POOL}:`)), [], 'deregistered before the finalizer was removed')
    for (const name of ['relays-0', 'relays-1']) {
      const pod = await api(cp, 'GET', `${PODS}/${name}`)
      assert.equal(pod.metadata.deletionTimestamp, undefined, 'the relay pods still run: it was the finalizer that deregistered them')
    }
    assert.ok([...(await listed()).keys()].some((id) => id.startsWith(`${NS}:edge:`)), 'other pools stay listed')
    const cleaned = await until('RegistryCleanedUp event', async () => (await poolEvents(cp, NS, POOL, 'RegistryCleanedUp'))[0])
    assert.equal(cleaned.type, 'Normal')
    assert.equal(cleaned.action, 'Finalize')
    assert.equal(cleaned.note, 'Removed 2 relays of the pool from discovery; finalizer pos-relay.io/registry-cleanup removed')
    await api(cp, 'PATCH', `${POOLS}/${POOL}`, { metadata: { finalizers: null } }, 'application/merge-patch+json')
    await until('pool gone', async () => (await tryApi(cp, 'GET', `${POOLS}/${POOL}`)).status === 404)
    await until('pods and identity Secrets garbage-collected', async () => {
      const ps = (await api(cp, 'GET', `${PODS}?labelSelector=pos-relay.io/pool=${POOL}`)).items
      const ss = (await api(cp, 'GET', `${SECRETS}?labelSelector=pos-relay.io/pool=${POOL}`)).items
      // bound pods wait for their kubelet: play it
      for (const p of ps) if (p.metadata.deletionTimestamp != null) await cp.request('DELETE', `${PODS}/${p.metadata.name}`, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0 })
      return ps.length === 0 && ss.length === 0
    }, 30_000, 200)
    // the other pool is untouched
    assert.equal((await api(cp, 'GET', `${POOLS}/edge`)).metadata.deletionTimestamp, undefined)
  })
})
