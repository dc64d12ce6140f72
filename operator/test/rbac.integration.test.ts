/**
 * The operator with exactly the RBAC the Helm chart grants: the chart's
 * ServiceAccount, (Cluster)Roles and bindings are rendered with helm and
 * applied to a real API server, and the operator runs impersonating that
 * ServiceAccount through a whole pool lifecycle (finalizer, identity Secrets,
 * pods, status, registry, Events, Lease, deletion), for the cluster-wide and
 * the one-namespace install.
 */
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createRedisStore, type RelayStore } from '@pos-relay/discovery'
import { startRedis, type RedisServer } from '@pos-relay/testing'
import { CHART_DIR, CRD_FILE, startControlPlane, type ControlPlane } from '../../e2e/kube/harness.ts'
import { api, createNode, kubelet, nodeObject, poolEvents, startOperator, tryApi, until, type OperatorProc } from './kube-helpers.ts'

const RELEASE_NS = 'pos-relay'
const NS = 'tenant'
const SA = `system:serviceaccount:${RELEASE_NS}:pos-relay-operator`

/**
 * One scenario: the chart's RBAC rendered with `helmSet`, the operator run
 * with `operatorArgs`; `kinds` are the RBAC objects that must have been applied.
 */
function scenario (title: string, helmSet: string[], operatorArgs: string[], kinds: string[], clusterWide: boolean): void {
  describe(title, { timeout: 300_000 }, () => {
    let cp: ControlPlane
    let redis: RedisServer
    let store: RelayStore
    let op: OperatorProc | undefined

    before(async () => {
      // as on clusters that enforce owner references (OpenShift, hardened clusters): setting
      // ownerReferences needs delete on the object, and blockOwnerDeletion needs
      // update on the owner's finalizers (the chart's relaypools/finalizers rule)
      cp = await startControlPlane({ crds: [CRD_FILE], apiServerFlags: ['--enable-admission-plugins=OwnerReferencesPermissionEnforcement'] })
      redis = await startRedis()
      store = createRedisStore({ url: redis.url })
      for (const ns of [RELEASE_NS, NS, 'elsewhere']) await api(cp, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })
      const rendered = await cp.helm(['template', 'pos-relay', CHART_DIR, '--namespace', RELEASE_NS, '--show-only', 'templates/operator-rbac.yaml', ...helmSet])
      assert.equal(rendered.code, 0, rendered.stderr)
      const applied = await cp.kubectl(['apply', '-f', '-', '-o', 'name'], rendered.stdout)
      assert.equal(applied.code, 0, applied.stderr)
      for (const kind of kinds) assert.ok(applied.stdout.includes(kind), `the chart's RBAC lacks ${kind}:\n${applied.stdout}`)
      // the operator's kubeconfig: the admin certificate, impersonating the chart's ServiceAccount
      const kc = JSON.parse(readFileSync(cp.kubeconfigPath, 'utf8'))
      kc.users[0].user.as = SA
      const kcPath = join(cp.dir, 'operator.kubeconfig')
      writeFileSync(kcPath, JSON.stringify(kc), { mode: 0o600 })
      const can = async (...args: string[]): Promise<string> => (await cp.kubectl(['auth', 'can-i', ...args, '--as', SA])).stdout.trim()
      assert.equal(await can('create', 'deployments'), 'no', 'the ServiceAccount is not an admin')
      assert.equal(await can('list', 'secrets', '-n', 'elsewhere'), clusterWide ? 'yes' : 'no', 'Secrets outside the watched namespace')
      assert.equal(await can('list', 'secrets', '-n', NS), 'yes')
      await api(cp, 'POST', `/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'disc' }, stringData: { 'redis-url': redis.url } })
      await createNode(cp, nodeObject('n1', [['ExternalIP', '203.0.113.21']]))
      await createNode(cp, nodeObject('n2', [['ExternalIP', '203.0.113.22']]))
      op = await startOperator({ ...cp, kubeconfigPath: kcPath }, ['--relay-image', 'pos-relay:test', '--leader-election-namespace', RELEASE_NS, ...operatorArgs])
    }, { timeout: 180_000 })

    after(async () => {
      await op?.kill('SIGTERM')
      await store?.close()
      await redis?.stop()
      await cp?.stop()
    })

    it('leads, reconciles a pool, registers its relays, records Events and finalizes it, with no permission error', async () => {
      await until('leader', async () => (await op!.metric('leader_election_master_status')) === 1)
      assert.equal((await api(cp, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${RELEASE_NS}/leases/pos-relay-operator`)).spec.holderIdentity, op!.identity)
      const pools = `/apis/pos-relay.io/v1alpha1/namespaces/${NS}/relaypools`
      await api(cp, 'POST', pools, { apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', metadata: { name: 'p' }, spec: { replicas: 2, discovery: { redisUrlSecretRef: { name: 'disc' } } } })
      await until('pods', async () => (await api(cp, 'GET', `/api/v1/namespaces/${NS}/pods`)).items.length === 2)
      for (const name of ['p-0', 'p-1']) await kubelet(cp, NS, name, true)
      await until('registered', async () => (await store.list()).length === 2)
      const pool = await until('Ready', async () => { const p = await api(cp, 'GET', `${pools}/p`); return p.status?.conditions?.find((c: any) => c.type === 'Ready')?.status === 'True' ? p : undefined })
      assert.equal(pool.status.registeredRelays, 2)
      // scale down: a pod and (once it is gone) its identity Secret are deleted
      await api(cp, 'PATCH', `${pools}/p`, { spec: { replicas: 1 } }, 'application/merge-patch+json')
      await until('p-1 terminating', async () => (await api(cp, 'GET', `/api/v1/namespaces/${NS}/pods/p-1`)).metadata.deletionTimestamp != null)
      await api(cp, 'DELETE', `/api/v1/namespaces/${NS}/pods/p-1`, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0 })
      await until('identity Secret deleted', async () => (await tryApi(cp, 'GET', `/api/v1/namespaces/${NS}/secrets/p-1-identity`)).status === 404)
      await api(cp, 'DELETE', `${pools}/p`)
      await until('pool finalized', async () => (await tryApi(cp, 'GET', `${pools}/p`)).status === 404)
      assert.equal((await store.list()).length, 0)
      // Events were written with the chart's permissions
      const reasons = new Set((await poolEvents(cp, NS, 'p')).map((e) => e.reason))
      for (const r of ['RelayPodCreated', 'RelayRegistered', 'RelayPodDeleted', 'RelayDeregistered', 'RegistryCleanedUp']) assert.ok(reasons.has(r), `no ${r} Event: ${[...reasons].join(', ')}`)
      assert.ok((await op!.metric('pos_relay_operator_events_total', { result: 'created' }))! >= 5)
      assert.equal(await op!.metric('pos_relay_operator_events_total', { result: 'error' }), undefined)
      assert.equal(await op!.metric('rest_client_requests_total', { code: '403' }), undefined, 'no request was forbidden')
      assert.equal(await op!.metric('controller_runtime_reconcile_errors_total'), 0)
    })
  })
}

scenario('operator with the chart\'s least-privilege RBAC (all namespaces: ClusterRole)', [], [], [
  'serviceaccount/pos-relay-operator', 'clusterrole.rbac.authorization.k8s.io/pos-relay-operator', 'clusterrole.rbac.authorization.k8s.io/pos-relay-operator-nodes',
  'role.rbac.authorization.k8s.io/pos-relay-operator-leader-election'
], true)

// operator.watchNamespace: pools, pods, Secrets and Events through a Role in that
// namespace only; a ClusterRole for nodes alone
scenario('operator with the chart\'s RBAC for one watched namespace (Role)', ['--set', `operator.watchNamespace=${NS}`], ['--namespace', NS], [
  'role.rbac.authorization.k8s.io/pos-relay-operator', 'rolebinding.rbac.authorization.k8s.io/pos-relay-operator', 'clusterrole.rbac.authorization.k8s.io/pos-relay-operator-nodes'
], false)
