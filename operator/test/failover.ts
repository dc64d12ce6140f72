/**
 * Operator leader failover, measured the same way by the test
 * (failover.integration.test.ts) and the bench (operator/bench/failover.ts):
 * two operator processes on one Lease, the leader is stopped (SIGKILL: the
 * Lease is not released, as when its node dies; SIGTERM: released, as when
 * its pod is deleted), and at the same moment a RelayPool is scaled up. The
 * figure is the time from the signal until the new relay pod exists, which
 * only a leader creates; the pod's RelayPodCreated Event names the process
 * that created it, so the measure is known to be the standby's work.
 */
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import type { ControlPlane } from '../../e2e/kube/harness.ts'
import { api, createNode, nodeObject, poolEvents, startOperator, tryApi, until, type OperatorProc } from './kube-helpers.ts'

export const FAILOVER_NS = 'failover'
export const FAILOVER_POOL = 'relays'
const POOLS = `/apis/pos-relay.io/v1alpha1/namespaces/${FAILOVER_NS}/relaypools`
const PODS = `/api/v1/namespaces/${FAILOVER_NS}/pods`

/** A namespace, the registry Secret, `nodes` Nodes (one per relay: they share a hostPort) and a one-relay pool. */
export async function setUpFailoverPool (cp: ControlPlane, redisUrl: string, nodes: number): Promise<void> {
  await api(cp, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: FAILOVER_NS } })
  await api(cp, 'POST', `/api/v1/namespaces/${FAILOVER_NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'discovery' }, stringData: { 'redis-url': redisUrl } })
  // TEST-NET-3 addresses: only written into objects, never contacted
  for (let i = 0; i < nodes; i++) await createNode(cp, nodeObject(`fo-${i}`, [['ExternalIP', `203.0.113.${100 + i}`]]))
  await api(cp, 'POST', POOLS, {
    apiVersion: 'pos-relay.io/v1alpha1',
    kind: 'RelayPool',
    metadata: { name: FAILOVER_POOL, namespace: FAILOVER_NS },
    spec: { replicas: 1, hostPort: 7373, discovery: { redisUrlSecretRef: { name: 'discovery' }, ttlSeconds: 30 } }
  })
}

export const isLeader = async (o: OperatorProc): Promise<boolean> => (await o.metric('leader_election_master_status')) === 1

/** Starts an operator and waits until it stands by (informers synced, not leading). */
export async function startStandby (cp: ControlPlane, args: string[]): Promise<OperatorProc> {
  const o = await startOperator(cp, args)
  try {
    await until('standby ready', async () => (await o.metric('leader_election_master_status')) === 0 && o.stderr.some((l) => l.includes('"caches_synced"')), 30_000, 50)
  } catch (err) {
    await o.kill('SIGKILL')
    throw err
  }
  return o
}

export interface FailoverResult {
  /** signal to the leader → the standby created the scaled-up pool's new pod */
  ms: number
  /** the pod created */
  pod: string
}

/**
 * Stops `leader` with `signal`, scales the pool up at once and measures until
 * the new pod exists; fails if it takes longer than `timeoutMs` or if the pod
 * was not created by `standby`.
 */
export async function measureFailover (cp: ControlPlane, o: { leader: OperatorProc, standby: OperatorProc, signal: 'SIGKILL' | 'SIGTERM', timeoutMs: number }): Promise<FailoverResult> {
  assert.ok(await isLeader(o.leader), 'the process to stop leads')
  assert.ok(!(await isLeader(o.standby)), 'the other stands by')
  const pool = await api(cp, 'GET', `${POOLS}/${FAILOVER_POOL}`)
  const replicas: number = pool.spec.replicas + 1
  const pod = `${FAILOVER_POOL}-${replicas - 1}`
  const t0 = performance.now()
  const exited = o.leader.kill(o.signal)
  await api(cp, 'PATCH', `${POOLS}/${FAILOVER_POOL}`, { spec: { replicas } }, 'application/merge-patch+json')
  await until(`pod ${pod} created within ${o.timeoutMs} ms of ${o.signal} to the leader`, async () => (await tryApi(cp, 'GET', `${PODS}/${pod}`)).status === 200, o.timeoutMs, 20)
  const ms = performance.now() - t0
  await exited
  const created = await until(`RelayPodCreated Event of ${pod}`, async () => (await poolEvents(cp, FAILOVER_NS, FAILOVER_POOL, 'RelayPodCreated')).find((e) => e.related?.name === pod), 10_000)
  assert.equal(created.reportingInstance, o.standby.identity, `${pod} was created by the standby`)
  assert.ok(await isLeader(o.standby), 'the standby leads')
  return { ms, pod }
}
