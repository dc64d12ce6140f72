// The before() of the operator's integration suites: a real control plane with the `relays`
// namespace, the discovery Secret on a fresh redis-server, three nodes and one operator.
import { createRedisStore, type RelayStore } from '@pos-relay/discovery'
import { startRedis, type RedisServer } from '@pos-relay/testing'
import { CRD_FILE, startControlPlane, type ControlPlane } from '../../e2e/kube/harness.ts'
import { api, createNode, nodeObject, startOperator, type OperatorProc } from './kube-helpers.ts'

export const NS = 'relays'
export const POOLS = `/apis/pos-relay.io/v1alpha1/namespaces/${NS}/relaypools`
export const PODS = `/api/v1/namespaces/${NS}/pods`
export const SECRETS = `/api/v1/namespaces/${NS}/secrets`
/** n1: an ExternalIP; n2: an InternalIP only; n3: a public-address annotation */
export const NODE_ADDR: Record<string, string> = { n1: '203.0.113.1', n2: '10.1.0.2', n3: '198.51.100.3' }

export interface OperatorFixture {
  cp: ControlPlane
  redis: RedisServer
  /** the registry the pools' discovery Secret names */
  store: RelayStore
  /** the first operator, leading */
  operator: OperatorProc
  /** stops the store, Redis and the control plane (operators are the caller's) */
  stop: () => Promise<void>
}

export async function startOperatorFixture (): Promise<OperatorFixture> {
  const cp = await startControlPlane({ controllerManager: true, crds: [CRD_FILE] })
  const redis = await startRedis()
  const store = createRedisStore({ url: redis.url })
  await api(cp, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } })
  await api(cp, 'POST', `${SECRETS}`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pos-relay-discovery' }, stringData: { 'redis-url': redis.url, 'p2p-secret': 'not-used-by-the-operator' } })
  await createNode(cp, nodeObject('n1', [['ExternalIP', NODE_ADDR.n1!], ['InternalIP', '10.1.0.1']]))
  await createNode(cp, nodeObject('n2', [['InternalIP', NODE_ADDR.n2!]]))
  await createNode(cp, nodeObject('n3', [['InternalIP', '10.1.0.3']], { 'pos-relay.io/public-address': NODE_ADDR.n3! }))
  const operator = await startOperator(cp, ['--relay-image', 'pos-relay:test'])
  return {
    cp,
    redis,
    store,
    operator,
    stop: async () => {
      await store.close()
      await redis.stop()
      await cp.stop()
    }
  }
}
