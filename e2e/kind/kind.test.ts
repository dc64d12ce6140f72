/**
 * pos-relay on a real Kubernetes cluster (kind): the image built from
 * relay-image/Dockerfile, the Helm chart, examples/relaypool.yaml, and two app
 * peers (client SDK) exchanging a payload through the relay pod on hostPort
 * 7373. Needs Docker and internet access (kind's node image, redis:7-alpine,
 * node:24-bookworm-slim): run it with `make e2e-kind` (npm run test:kind); it
 * is in neither `npm test` nor `npm run test:kube`. Missing prerequisites fail
 * the run with what to install. See e2e/kind/README.md.
 *
 * The checks are e2e/shared/relaypool.ts, the same code the hermetic kube
 * suite (e2e/kube/test/relaypool-e2e.test.ts) runs against a real API server.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  applyExamplePool, deletePool, EXAMPLE_POOL, relayedTransfer, setNodesPublicAddress, waitForDeregistered, waitForDiscovery, waitForPoolEvents, waitForPoolReady
} from '../shared/relaypool.ts'
import { checkPrerequisites, DISCOVERY_URL, KindCluster, NAMESPACE, PUBLIC_ADDRESS, readKindConfig, RELAY_HOST_PORT } from './kind.ts'

// Before any test, outside any timeout: fail at once, and clearly, without the tools.
readKindConfig()
const tools = await checkPrerequisites()

describe(`kind: chart, RelayPool and a relayed transfer (docker ${tools.versions.docker}, kind ${tools.versions.kind}, kubectl ${tools.versions.kubectl}, helm ${tools.versions.helm})`, { timeout: 3_600_000 }, () => {
  const cluster = new KindCluster(tools)
  let pool: any
  let failed = false

  before(async () => {
    try {
      await cluster.create()
      await cluster.buildAndLoadImage()
      await cluster.installChart()
      // relays announce 127.0.0.1:7373, where the kind config publishes the node's hostPort
      await setNodesPublicAddress(cluster.kubectl, PUBLIC_ADDRESS)
    } catch (err) {
      failed = true
      throw err
    }
  }, { timeout: 3_000_000 })

  after(async () => {
    if (failed) process.stderr.write(`\n--- cluster state ---\n${await cluster.diagnostics()}\n`)
    await cluster.delete()
  })

  const step = (name: string, fn: () => Promise<void>): void => {
    it(name, async () => { try { await fn() } catch (err) { failed = true; throw err } })
  }

  step('kubectl apply -f examples/relaypool.yaml (one replica: one node, one hostPort) → Ready, relay registered', async () => {
    await applyExamplePool(cluster.kubectl, NAMESPACE, { replicas: 1 })
    // the first start includes the image's start-up and the readiness probe
    pool = await waitForPoolReady(cluster.kubectl, NAMESPACE, EXAMPLE_POOL, 1, 300_000)
    assert.equal(pool.spec.hostPort, RELAY_HOST_PORT)
    assert.equal(pool.status.relays[0].multiaddr, `/ip4/127.0.0.1/tcp/${RELAY_HOST_PORT}/p2p/${pool.status.relays[0].peerId}`)
  })

  step('the discovery API (NodePort 30080) lists the relay pod at 127.0.0.1:7373', async () => {
    await waitForDiscovery(DISCOVERY_URL, pool)
  })

  step('the operator recorded Events on the pool', async () => {
    await waitForPoolEvents(cluster.kubectl, NAMESPACE, EXAMPLE_POOL, ['RelayPodCreated', 'RelayRegistered'])
  })

  step('two SDK peers exchange 4 MiB through the relay pod on hostPort 7373', async () => {
    const r = await relayedTransfer(DISCOVERY_URL, pool.status.relays.map((x: any) => x.peerId), 4 * 1024 * 1024)
    assert.equal(r.bytes, 4 * 1024 * 1024)
  })

  step('deleting the pool removes its relay from discovery (finalizer)', async () => {
    await deletePool(cluster.kubectl, NAMESPACE, EXAMPLE_POOL, 120_000)
    await waitForDeregistered(DISCOVERY_URL, NAMESPACE, EXAMPLE_POOL)
  })
})
