/**
 * The kind suite's scenario, hermetic: a real kube-apiserver (+ etcd and the
 * garbage collector), the operator and the discovery API as processes, real
 * Redis, and the relay started from the pod the operator created (its args,
 * env and identity Secret, as a kubelet would) with the container's port
 * mapped to the pool's hostPort on 127.0.0.1. The checks are
 * e2e/shared/relaypool.ts, the code e2e/kind/kind.test.ts runs on a real
 * cluster: the example pool becomes Ready, discovery lists its relay, the
 * operator's Events appear, two SDK peers move bytes through the relay, and
 * deleting the pool takes the relay out of discovery.
 *
 * It also checks the kind suite's own inputs where they can be checked here:
 * the kind config, and the chart rendered with the kind suite's Helm values
 * (accepted by this API server).
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { freePort, startRedis, type RedisServer } from '@pos-relay/testing'
import { kubelet, runRelayContainer, startOperator, until, type CliProcess, type OperatorProc } from '../../../operator/test/kube-helpers.ts'
import { startLocalDiscovery, type LocalDiscovery } from '../../test/helpers/relay.ts'
import {
  applyExamplePool, deletePool, EXAMPLE_POOL, listRelays, relayedTransfer, setNodesPublicAddress, transferThrough, waitForDeregistered, waitForDiscovery, waitForPoolEvents, waitForPoolReady
} from '../../shared/relaypool.ts'
import { AUTH_HOST_PORT, DISCOVERY_NODE_PORT, helmValues, NAMESPACE, PUBLIC_ADDRESS, readKindConfig, RELAY_HOST_PORT } from '../../kind/kind.ts'
import { CRD_FILE, ensureKubeBinaries, startControlPlane, type ControlPlane } from '../harness.ts'
import { poolFixture, renderChart } from './helpers.ts'

const SECRET = 'relaypool-e2e-' + Math.random().toString(36).slice(2)

// Outside any test so no test timeout applies: the first run builds the binaries (~12 min).
await ensureKubeBinaries()

describe('RelayPool end to end on a real API server (the kind scenario, hermetic)', { timeout: 300_000 }, () => {
  let cp: ControlPlane
  let redis: RedisServer
  let discovery: LocalDiscovery
  let operator: OperatorProc
  let relay: (CliProcess & { ready: any }) | undefined
  let hostPort: number
  let pool: any

  before(async () => {
    cp = await startControlPlane({ controllerManager: true, crds: [CRD_FILE] })
    redis = await startRedis()
    discovery = await startLocalDiscovery({ secret: SECRET, redisUrl: redis.url, args: ['--ttl', '30'] })
    // what the chart creates: the Secret the example pool references; one node, like the kind cluster
    await poolFixture(cp, { namespace: NAMESPACE, redisUrl: redis.url, p2pSecret: SECRET, nodes: [{ name: 'node-1', internalIP: '10.89.0.2' }] })
    await setNodesPublicAddress(cp.kubectl, PUBLIC_ADDRESS)
    operator = await startOperator(cp, ['--relay-image', 'pos-relay:test'])
    // the kind config maps the node's 7373 to 127.0.0.1:7373; here a free port stands for it
    hostPort = await freePort()
  }, { timeout: 180_000 })

  after(async () => {
    await relay?.kill('SIGKILL')
    await operator?.kill('SIGKILL')
    await discovery?.proc.kill('SIGKILL')
    await redis?.stop()
    await cp?.stop()
  })

  it('the kind suite\'s config and Helm values are valid: its ports, and the chart rendered with its values accepted by the API server', async () => {
    const cfg = readKindConfig()
    assert.deepEqual(cfg.nodes.map((n) => n.role), ['control-plane', 'worker', 'worker'])
    assert.deepEqual(cfg.nodes[0]!.extraPortMappings!.map((m) => m.containerPort), [DISCOVERY_NODE_PORT])
    for (const w of cfg.nodes.slice(1)) assert.deepEqual(w.extraPortMappings!.map((m) => `${m.containerPort}/${m.protocol}`), [`${RELAY_HOST_PORT}/TCP`, `${RELAY_HOST_PORT}/UDP`, `${AUTH_HOST_PORT}/TCP`])
    const values = join(cp.dir, 'kind-values.json')
    writeFileSync(values, JSON.stringify(helmValues()))
    const rendered = await renderChart(['-f', values])
    assert.match(rendered, /image: "pos-relay:e2e-kind"\n\s+imagePullPolicy: Never/)
    assert.match(rendered, /type: NodePort[\s\S]*?nodePort: 30080/)
    const r = await cp.kubectl(['apply', '--dry-run=server', '--validate=strict', '-n', NAMESPACE, '-f', '-'], rendered)
    assert.equal(r.code, 0, r.stderr)
  })

  it('kubectl apply -f examples/relaypool.yaml → the relay pod runs (as a kubelet would) → Ready and registered', async () => {
    await applyExamplePool(cp.kubectl, NAMESPACE, { replicas: 1, hostPort })
    const pod = await until('relay pod', async () => {
      const r = await cp.kubectl(['get', 'pod', `${EXAMPLE_POOL}-0`, '-n', NAMESPACE, '-o', 'json'])
      return r.code === 0 ? JSON.parse(r.stdout) : undefined
    })
    assert.ok(pod.spec.containers[0].args.includes(`/ip4/${PUBLIC_ADDRESS}/tcp/${hostPort}`), pod.spec.containers[0].args.join(' '))
    relay = await runRelayContainer(cp, pod, cp.dir, { port: hostPort })
    await kubelet(cp, NAMESPACE, pod.metadata.name, true)
    pool = await waitForPoolReady(cp.kubectl, NAMESPACE, EXAMPLE_POOL, 1)
    assert.equal(pool.status.relays[0].peerId, relay.ready.peer_id, 'the pod runs the key of its identity Secret')
  })

  it('the discovery API lists the relay at the address peers can dial', async () => {
    const [entry] = await waitForDiscovery(discovery.url, pool)
    assert.deepEqual(entry!.addrs, [`/ip4/127.0.0.1/tcp/${hostPort}/p2p/${relay!.ready.peer_id}`, `/ip4/127.0.0.1/udp/${hostPort}/quic-v1/p2p/${relay!.ready.peer_id}`])
  })

  it('the operator recorded Events on the pool', async () => {
    await waitForPoolEvents(cp.kubectl, NAMESPACE, EXAMPLE_POOL, ['RelayPodCreated', 'RelayRegistered'])
  })

  it('two SDK peers exchange 4 MiB through the relay', async () => {
    const r = await relayedTransfer(discovery.url, [relay!.ready.peer_id], 4 * 1024 * 1024)
    assert.equal(r.relayPeerId, relay!.ready.peer_id)
  })

  it('the relay carries 4 MiB through its own address, over TCP and over QUIC (the kind suite\'s per-relay check)', async () => {
    const addr = pool.status.relays[0].multiaddr
    assert.equal((await transferThrough(addr)).relayPeerId, relay!.ready.peer_id)
    assert.equal((await transferThrough(addr.replace(/\/tcp\/(\d+)\/p2p\//, '/udp/$1/quic-v1/p2p/'))).relayPeerId, relay!.ready.peer_id)
  })

  it('deleting the pool removes its relay from discovery (finalizer)', async () => {
    await deletePool(cp.kubectl, NAMESPACE, EXAMPLE_POOL)
    await waitForDeregistered(discovery.url, NAMESPACE, EXAMPLE_POOL)
    assert.deepEqual(await listRelays(discovery.url), [])
  })
})
