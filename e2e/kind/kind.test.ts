/**
 * pos-relay on a real Kubernetes cluster (kind: one control plane, two
 * workers): the image built from relay-image/Dockerfile (`make image`), the
 * chart packaged by `make chart`, examples/relaypool.yaml, and peers relaying
 * through the relay pods' hostPorts. Run it with `make e2e-kind` (npm run
 * test:kind); see e2e/kind/README.md. Where no registry answers (this
 * project's machines and CI) every image is built locally first
 * (e2e/kind/offline/).
 *
 * The RelayPool checks are e2e/shared/relaypool.ts, the code the hermetic
 * kube suite (e2e/kube/test/relaypool-e2e.test.ts) runs against a real API
 * server; what needs nodes, a kubelet and a scheduler is only here.
 * Helpers live next to this file: kind.ts (cluster, images, chart),
 * netcheck.ts (the cluster network step), discovery-sampling.ts (discovery
 * sampling, reachability after a relay goes away), auth-pool.ts (accounts),
 * ci-values.ts (the charts/pos-relay/ci/*.yaml releases).
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createRelayPeer } from '@pos-relay/client'
import type { Libp2p } from '@libp2p/interface'
import {
  applyExamplePool, deletePool, EXAMPLE_POOL, getPool, listRelays, poll, relayedTransfer, transferThrough, trickleThrough, waitForDeregistered, waitForDiscovery, waitForPoolReady, type Kubectl
} from '../shared/relaypool.ts'
import { run } from '../kube/harness.ts'
import { createAccount } from '../test/helpers/accounts-stack.ts'
import { sendToSink, serveSink } from '../test/helpers/transfer.ts'
import { hopRequest, RESERVE } from '../../relay-image/test/hop-client.ts'
import { CI_FILES, installCiValuesFile, PROMETHEUS_OPERATOR_MODULE, prometheusOperatorCrds } from './ci-values.ts'
import { AUTH_POOL, authPoolManifest, meteredUsage, multiaddr, plainPeer, relayCounters, reserveOn, secretValue, ticketedPeer } from './auth-pool.ts'
import {
  AUTH_HOST_PORT, CACHE_ROOT, checkPrerequisites, DISCOVERY_URL, ensureDocker, helmValues, IMAGE, KindCluster, NAMESPACE, prepareSupply, readKindConfig, RELAY_HOST_PORT, RELEASE, rustPeerBinary, rustRelayedTransfer, WORKER_ADDRESSES
} from './kind.ts'
import { fewestListedWhile, listedPoolRelays, REACHABLE_BOUND_MS, reachableAgain } from './discovery-sampling.ts'
import { checkClusterNetwork } from './netcheck.ts'

const log = (line: string): void => { process.stderr.write(`kind: ${line}\n`) }
const KEEP = process.env.E2E_KIND_KEEP === '1'

// Before any test, outside any timeout: a Docker engine, the image supply
// (offline: built locally, ~15-25 min when nothing is cached) and the tools.
readKindConfig()
const docker = await ensureDocker()
log(`Docker engine at ${docker.dockerHost}${docker.started ? ' (started by this suite)' : ''}`)
const supply = await prepareSupply(log)
const tools = await checkPrerequisites({ ...process.env, ...supply.env })
const rustPeer = await rustPeerBinary()

async function k (kubectl: Kubectl, args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input)
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}`)
  return r.stdout
}

describe(`kind: chart, RelayPool and relayed peers on a real cluster (${supply.offline ? 'offline image supply' : 'stock images'}; docker ${tools.versions.docker}, kind ${tools.versions.kind}, kubectl ${tools.versions.kubectl}, helm ${tools.versions.helm})`, { timeout: 3_600_000 }, () => {
  const cluster = new KindCluster(tools, supply)
  let workers: string[] = []
  let pool: any
  let chart = ''
  let failed = false

  before(async () => {
    try {
      log('creating the cluster (1 control plane, 2 workers)')
      await cluster.create()
      log('building the image (make image) and loading it into the nodes')
      await cluster.buildAndLoadImages()
      chart = await cluster.packageChart()
      log(`helm install ${RELEASE} ${chart} --wait`)
      await cluster.installChart(chart)
      workers = await cluster.workers()
      assert.equal(workers.length, 2, `workers: ${workers.join(', ')}`)
      // each worker's relay announces the loopback address the kind config publishes its hostPort on
      for (let i = 0; i < workers.length; i++) await k(cluster.kubectl, ['annotate', '--overwrite', 'node', workers[i]!, `pos-relay.io/public-address=${WORKER_ADDRESSES[i]!}`])
    } catch (err) {
      failed = true
      throw err
    }
  }, { timeout: 3_000_000 })

  after(async () => {
    if (failed) process.stderr.write(`\n--- cluster state ---\n${await cluster.diagnostics()}\n`)
    if (KEEP && !failed) {
      const relays = (await listRelays(DISCOVERY_URL).catch(() => [])).flatMap((r) => r.addrs)
      // what a person (or another tool) needs to use the cluster; e2e/kind/keep-info.sh prints it
      // again as the run's last line, after node:test's summary
      const info = JSON.stringify({ kubeconfig: cluster.kubeconfig, discovery_url: DISCOVERY_URL, relays })
      writeFileSync(join(CACHE_ROOT, 'kind', `${cluster.name}.json`), info + '\n')
      process.stdout.write(info + '\n')
    }
    if (!KEEP) rmSync(join(CACHE_ROOT, 'kind', `${cluster.name}.json`), { force: true })
    await cluster.delete(failed && !KEEP)
    // a Docker engine this suite started goes with the cluster (kept with the cluster under E2E_KIND_KEEP=1)
    if (docker.started && !KEEP) await run('bash', [new URL('./offline/docker.sh', import.meta.url).pathname, 'stop'], { timeoutMs: 60_000 })
  })

  const step = (name: string, fn: () => Promise<void>, opts: { skip?: string | boolean } = {}): void => {
    it(name, { skip: opts.skip }, async () => { try { await fn() } catch (err) { failed = true; throw err } })
  }

  step('the cluster network: a pod on one worker reaches a pod IP and a ClusterIP Service on the other', async () => {
    await checkClusterNetwork(cluster.kubectl, workers)
  })

  step('the image: no CA bundle of the build host in the final image', async () => {
    const hostBundle = process.env.NODE_EXTRA_CA_CERTS
    const r = await run(tools.docker, ['run', '--rm', '--user', '0', '--entrypoint', '/bin/sh', IMAGE, '-c',
      'find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -type f -size +1k -print0 | xargs -0 sha256sum; echo; find / -xdev -name ".build-ca*" -print'], { timeoutMs: 300_000 })
    assert.equal(r.code, 0, r.stderr)
    assert.doesNotMatch(r.stdout, /\.build-ca/, 'the build-stage CA folder reached the final image')
    if (hostBundle != null && hostBundle !== '') {
      const sha = createHash('sha256').update(readFileSync(hostBundle)).digest('hex')
      // had the image its own bundle identical to the host's, this check could not tell them apart
      const ownBundle = r.stdout.split('\n').find((l) => l.endsWith('/etc/ssl/certs/ca-certificates.crt'))
      assert.ok(ownBundle == null || !ownBundle.startsWith(sha), 'the image\'s own CA bundle equals the host\'s: this check cannot tell them apart')
      assert.ok(!r.stdout.includes(sha), `a file with the content of the host's CA bundle (${hostBundle}) is in the final image`)
    } else {
      log('NODE_EXTRA_CA_CERTS is not set: no host CA bundle was given to the build')
    }
    const user = (await run(tools.docker, ['image', 'inspect', IMAGE, '--format', '{{.Config.User}}'], { timeoutMs: 30_000 })).stdout.trim()
    assert.equal(user, '10001:10001')
  })

  step('helm test pos-relay passes (discovery answers from inside the cluster; no pool yet, so the relay check says it is skipped)', async () => {
    const out = await cluster.helm(['test', RELEASE, '--namespace', NAMESPACE, '--logs', '--timeout', '3m'])
    assert.match(out, /Phase:\s+Succeeded/)
    assert.match(out, /GET \/api\/p2p\/relays: 200/)
    // the ci/*.yaml step checks a relay for real (tests.requireRelays, a pool announcing an in-cluster address)
    assert.match(out, /no relay listed: the relay check is skipped/)
  })

  step('kubectl apply -f examples/relaypool.yaml → one relay on each worker, Ready and registered; kubectl get rp shows 2/2', async () => {
    await applyExamplePool(cluster.kubectl, NAMESPACE)
    // the first start includes the image's start-up and the readiness probe
    pool = await waitForPoolReady(cluster.kubectl, NAMESPACE, EXAMPLE_POOL, 2, 300_000)
    assert.equal(pool.spec.hostPort, RELAY_HOST_PORT)
    const nodes = pool.status.relays.map((r: any) => r.node).sort()
    assert.deepEqual(nodes, [...workers].sort(), 'one relay per worker')
    for (const r of pool.status.relays) {
      assert.equal(r.multiaddr, `/ip4/${WORKER_ADDRESSES[workers.indexOf(r.node)]!}/tcp/${RELAY_HOST_PORT}/p2p/${r.peerId}`)
    }
    const table = await k(cluster.kubectl, ['get', 'rp', EXAMPLE_POOL, '-n', NAMESPACE])
    assert.match(table, new RegExp(`^${EXAMPLE_POOL}\\s+2\\s+2\\s+2\\s+True\\s`, 'm'), table)
  })

  step('the discovery API (NodePort 30080) lists both relays, each at its worker\'s address, TCP and QUIC', async () => {
    await waitForDiscovery(DISCOVERY_URL, pool)
  })

  step('each relay pod relays 4 MiB over TCP and over QUIC (TCP and UDP hostPort 7373 on both workers)', async () => {
    for (const r of pool.status.relays) {
      const tcp = await transferThrough(r.multiaddr)
      assert.equal(tcp.relayPeerId, r.peerId)
      const quic = await transferThrough(r.multiaddr.replace(/\/tcp\/(\d+)\/p2p\//, '/udp/$1/quic-v1/p2p/'))
      assert.equal(quic.relayPeerId, r.peerId)
      log(`${r.node}: 4 MiB relayed over TCP in ${tcp.ms} ms, over QUIC in ${quic.ms} ms`)
    }
  })

  step('a rust-libp2p peer (the NAT lab\'s) relays 4 MiB to another through each relay pod over QUIC (UDP hostPort)', async () => {
    for (const r of pool.status.relays) {
      const quicAddr = r.multiaddr.replace(/\/tcp\/(\d+)\/p2p\//, '/udp/$1/quic-v1/p2p/')
      const { dialer, listener } = await rustRelayedTransfer(rustPeer.bin!, quicAddr, 4 * 1024 * 1024)
      assert.equal(dialer.ok, true, JSON.stringify(dialer))
      assert.equal(dialer.connection, 'relayed', JSON.stringify(dialer))
      assert.equal(listener.ok, true, JSON.stringify(listener))
      assert.equal(listener.sha256, dialer.sha256, 'the listener received other bytes than the dialer sent')
      assert.equal(listener.bytes, 4 * 1024 * 1024)
    }
  }, { skip: rustPeer.bin == null ? rustPeer.why : false })

  step('two SDK peers find the relays through discovery and exchange 4 MiB through a relay pod', async () => {
    const r = await relayedTransfer(DISCOVERY_URL, pool.status.relays.map((x: any) => x.peerId), 4 * 1024 * 1024)
    assert.equal(r.bytes, 4 * 1024 * 1024)
  })

  step('inside a relay pod: non-root, read-only root filesystem, no capabilities, seccomp RuntimeDefault', async () => {
    const podName = pool.status.relays[0].pod
    const status = await k(cluster.kubectl, ['exec', '-n', NAMESPACE, podName, '--', 'cat', '/proc/1/status'])
    const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? ''
    assert.match(field('Uid'), /^10001\s+10001\s+10001\s+10001$/, `Uid: ${field('Uid')}`)
    for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(field(cap), '0000000000000000', `${cap}: ${field(cap)}`)
    assert.equal(field('NoNewPrivs'), '1')
    assert.equal(field('Seccomp'), '2', 'seccomp filter mode (RuntimeDefault)')
    const write = await cluster.kubectl(['exec', '-n', NAMESPACE, podName, '--', 'sh', '-c', 'touch /app/probe'])
    assert.notEqual(write.code, 0)
    assert.match(write.stderr, /Read-only file system/)
    const tmp = await cluster.kubectl(['exec', '-n', NAMESPACE, podName, '--', 'sh', '-c', 'touch /tmp/probe && rm /tmp/probe'])
    assert.equal(tmp.code, 0, `/tmp is writable: ${tmp.stderr}`)
  })

  step(`kubectl delete pod of the relay an SDK peer listens on (relayCount 1): out of discovery within 2 s, a new sender reaches the peer within ${REACHABLE_BOUND_MS / 1000} s, the pod replaced and listed again`, async () => {
    // an app peer on this machine, as the suite's other peers: with relayCount 1 it lives on one relay only
    const listener = await createRelayPeer({ discoveryUrl: DISCOVERY_URL, relayCount: 1, listen: ['/ip4/127.0.0.1/tcp/0'], reservationTimeoutMs: 30_000 })
    const uid = async (pod: string): Promise<string> => (await k(cluster.kubectl, ['get', 'pod', pod, '-n', NAMESPACE, '-o', 'jsonpath={.metadata.uid}'])).trim()
    let victim: any
    let victimUid = ''
    try {
      await serveSink(listener.node)
      victim = pool.status.relays.find((r: any) => listener.relays.hasReservation(r.peerId))
      assert.ok(victim != null, `the listener holds no reservation on the pool's relays: ${listener.relays.circuitAddresses().join(', ')}`)
      const id = `${NAMESPACE}:${EXAMPLE_POOL}:${victim.slot}`
      assert.ok((await listedPoolRelays()).includes(id))
      victimUid = await uid(victim.pod)
      await k(cluster.kubectl, ['delete', 'pod', victim.pod, '-n', NAMESPACE, '--wait=false'])
      const t0 = Date.now()
      const [gone, reached] = await Promise.all([
        poll(`${id} to leave discovery`, async () => (await listedPoolRelays()).includes(id) ? undefined : Date.now() - t0, 30_000),
        reachableAgain(listener.node.peerId.toString(), t0)
      ])
      log(`relay ${id} left discovery ${gone} ms after the pod's deletion`)
      log(`the listener on it was reachable again ${reached.ms} ms after the deletion (a new sender delivered 64 KiB through ${reached.relay === victim.peerId ? 'the replacement pod' : 'the other relay'}, attempt ${reached.attempts})`)
      assert.ok(gone <= 2000, `left discovery after ${gone} ms`)
      assert.ok(reached.ms <= REACHABLE_BOUND_MS, `reachable again only after ${reached.ms} ms`)
    } finally {
      await listener.stop().catch(() => {})
    }
    pool = await waitForPoolReady(cluster.kubectl, NAMESPACE, EXAMPLE_POOL, 2, 180_000)
    const replaced = pool.status.relays.find((r: any) => r.slot === victim.slot)
    assert.notEqual(await uid(replaced.pod), victimUid, 'a new pod runs the slot')
    assert.equal(replaced.peerId, victim.peerId, 'the slot keeps its identity')
    await waitForDiscovery(DISCOVERY_URL, pool)
  })

  step('the leader operator\'s pod is deleted: the standby replica takes over, no Ready relay leaves discovery', async () => {
    const lease = async (): Promise<string> => {
      const leases = JSON.parse(await k(cluster.kubectl, ['get', 'leases', '-n', NAMESPACE, '-o', 'json'])).items
      return leases.find((l: any) => /operator/.test(l.metadata.name))?.spec?.holderIdentity ?? ''
    }
    const before = await lease()
    assert.notEqual(before, '', 'the operator holds a Lease')
    const { fewest, samples } = await fewestListedWhile(async () => {
      // the chart runs two replicas; the holder identity is "<pod name>-<pid>"
      const operators = JSON.parse(await k(cluster.kubectl, ['get', 'pods', '-n', NAMESPACE, '-l', 'app.kubernetes.io/component=operator', '-o', 'json'])).items.map((p: any) => p.metadata.name as string)
      const leader = operators.find((name: string) => before.startsWith(`${name}-`))
      assert.ok(leader != null, `the Lease holder ${before} is none of the operator pods ${operators.join(', ')}`)
      await k(cluster.kubectl, ['delete', 'pod', '-n', NAMESPACE, leader, '--wait=false'])
      const holder = await poll('a new operator to take the lease', async () => { const h = await lease(); return h !== '' && h !== before ? h : undefined }, 180_000)
      // the leader releases the Lease on SIGTERM, so whichever candidate asks first takes it: usually the
      // standby (it retries every 2 s), sometimes the leader's replacement pod when it starts within that
      // time. Either way the Lease must not stay with the deleted pod, and relays must stay listed.
      assert.ok(!holder.startsWith(`${leader}-`), `the deleted leader ${leader} still holds the Lease`)
      log(`Lease ${before} -> ${holder} (${operators.some((name: string) => name !== leader && holder.startsWith(`${name}-`)) ? 'the standby' : 'a new pod'})`)
      // and keep sampling a while under the new leader
      await new Promise((resolve) => setTimeout(resolve, 10_000))
    })
    assert.equal(fewest, 2, `at some of ${samples} samples only ${fewest} relays were listed`)
  })

  step('a spec change that replaces pods (the image tag): never fewer than replicas−1 relays listed, every 250 ms', async () => {
    const next = `${IMAGE}-rollout`
    assert.equal((await run(tools.docker, ['tag', IMAGE, next], { timeoutMs: 60_000 })).code, 0)
    await cluster.load([next])
    const { fewest, samples } = await fewestListedWhile(async () => {
      await k(cluster.kubectl, ['patch', 'relaypool', EXAMPLE_POOL, '-n', NAMESPACE, '--type', 'merge', '-p', JSON.stringify({ spec: { image: next, imagePullPolicy: 'Never' } })])
      await poll('every relay pod to run the new image', async () => {
        const pods = JSON.parse(await k(cluster.kubectl, ['get', 'pods', '-n', NAMESPACE, '-l', 'app.kubernetes.io/component=relay', '-o', 'json'])).items
        return pods.length === 2 && pods.every((p: any) => p.spec.containers[0].image === next && p.metadata.deletionTimestamp == null) ? true : undefined
      }, 600_000)
      pool = await waitForPoolReady(cluster.kubectl, NAMESPACE, EXAMPLE_POOL, 2, 300_000)
    })
    log(`rollout: at least ${fewest} of 2 relays listed over ${samples} samples`)
    assert.ok(fewest >= 1, `only ${fewest} relays listed at some point of the rollout`)
    await waitForDiscovery(DISCOVERY_URL, pool)
  })

  /** what a stuck drain needs explained: the node's pods, the disruption budgets, the relay pod's events and log tail */
  async function drainState (node: string, pod: string): Promise<string> {
    const out = await Promise.all([
      cluster.kubectl(['get', 'pods', '-A', '-o', 'wide', '--field-selector', `spec.nodeName=${node}`]),
      cluster.kubectl(['get', 'pdb', '-A']),
      cluster.kubectl(['get', 'events', '-n', NAMESPACE, '--field-selector', `involvedObject.name=${pod}`]),
      cluster.kubectl(['logs', pod, '-n', NAMESPACE, '--tail', '20'])
    ])
    return out.map((r) => r.stdout + r.stderr).join('\n')
  }

  step('kubectl drain a worker: its relay refuses new reservations, an open circuit keeps flowing, it leaves discovery, the pool reports 1/2 with Ready=False naming the node; then recovers', async () => {
    // drain the worker that runs the fewest of the release's single-replica
    // workloads (Redis, discovery, operator): their eviction would measure them, not the relay
    const singles = JSON.parse(await k(cluster.kubectl, ['get', 'pods', '-n', NAMESPACE, '-l', 'app.kubernetes.io/component in (redis,discovery,operator)', '-o', 'json'])).items
    const weight = (n: string): number => singles.filter((p: any) => p.spec.nodeName === n).reduce((w: number, p: any) => w + (p.metadata.labels['app.kubernetes.io/component'] === 'redis' ? 10 : 1), 0)
    const node = [...workers].sort((a, b) => weight(a) - weight(b))[0]!
    const drained = pool.status.relays.find((r: any) => r.node === node)
    const id = `${NAMESPACE}:${EXAMPLE_POOL}:${drained.slot}`
    const trickle = await trickleThrough(drained.multiaddr)
    const drain = run(tools.kubectl, ['--kubeconfig', cluster.kubeconfig, 'drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=180s'], { timeoutMs: 240_000 })
    let drainEnded = 'kubectl drain: still running'
    void drain.then((r) => { drainEnded = `kubectl drain: exit ${r.code}\n${r.stdout}${r.stderr}` })
    try {
      // evicted, and the relay got its SIGTERM (the kubelet sends it a moment after the deletion)
      await poll(`${drained.pod} to be evicted and draining (its drain_started log line)`, async () => {
        const r = await cluster.kubectl(['logs', drained.pod, '-n', NAMESPACE])
        return r.code === 0 && r.stdout.includes('"event":"drain_started"') ? true : undefined
      }, 120_000, async () => `${drainEnded}\n${await drainState(node, drained.pod)}`)
      // while it drains (drainSeconds 30): no new reservation, the open circuit keeps carrying bytes
      const refused = await transferThrough(drained.multiaddr, 1024, 8_000).then(() => 'reserved', (err: Error) => err.message)
      assert.notEqual(refused, 'reserved', 'a draining relay accepted a new reservation')
      // and it was the relay that said no, for that reason (RESERVATION_REFUSED while draining)
      await poll('the relay to log its refusal (denied: draining)', async () => {
        const r = await cluster.kubectl(['logs', drained.pod, '-n', NAMESPACE])
        return r.stdout.includes('"event":"denied","reason":"draining"') ? true : undefined
      }, 10_000)
      const atEviction = trickle.received()
      await new Promise((resolve) => setTimeout(resolve, 5_000))
      assert.equal(trickle.error(), undefined)
      assert.ok(trickle.received() > atEviction, `the open circuit stopped while the relay drained (${atEviction} bytes, then nothing)`)
      log(`drain: the open circuit carried ${trickle.received() - atEviction} bytes in 5 s after the eviction; a new reservation: ${refused.split('\n')[0]}`)
      await poll(`${id} to leave discovery`, async () => (await listedPoolRelays()).includes(id) ? undefined : true, 60_000)
      const t0 = Date.now()
      const p = await poll('the pool to report 1/2 with Ready=False', async () => {
        const p = await getPool(cluster.kubectl, NAMESPACE, EXAMPLE_POOL)
        const ready = p.status?.conditions?.find((c: any) => c.type === 'Ready')
        return p.status?.readyRelays === 1 && ready?.status === 'False' ? p : undefined
      }, 60_000)
      log(`drain: pool at 1/2 ${Date.now() - t0} ms after the relay left discovery`)
      const ready = p.status.conditions.find((c: any) => c.type === 'Ready')
      assert.match(`${ready.reason}: ${ready.message}`, new RegExp(node), `Ready condition: ${ready.reason}: ${ready.message}`)
      const table = await k(cluster.kubectl, ['get', 'rp', EXAMPLE_POOL, '-n', NAMESPACE])
      assert.match(table, new RegExp(`^${EXAMPLE_POOL}\\s+2\\s+1\\s+1\\s+False`, 'm'), table)
      const r = await drain
      assert.equal(r.code, 0, `kubectl drain: ${r.stderr}`)
    } finally {
      await trickle.stop()
      await drain.catch(() => {})
      await k(cluster.kubectl, ['uncordon', node])
    }
    pool = await waitForPoolReady(cluster.kubectl, NAMESPACE, EXAMPLE_POOL, 2, 300_000)
    await waitForDiscovery(DISCOVERY_URL, pool)
  })

  step('accounts (spec.auth.required): the hook Job made the key and admin Secrets; a ticketed js peer reserves and relays through the pool\'s relay pod, one without a ticket is refused; `pos-relay usage` shows the bytes the relay counted', async () => {
    // the pre-install hook Job created the Secrets (Helm rendered no key material) and was deleted once it succeeded
    const job = await cluster.kubectl(['get', 'job', `${RELEASE}-accounts-secrets`, '-n', NAMESPACE])
    assert.notEqual(job.code, 0, `the accounts hook Job is still there: ${job.stdout}`)
    const admin = await secretValue(cluster.kubectl, NAMESPACE, `${RELEASE}-admin`, 'admin-secret')
    const signing = JSON.parse(await secretValue(cluster.kubectl, NAMESPACE, `${RELEASE}-ticket-keys`, 'ticket-keys.json')) as any[]
    // discovery signs with the mounted Secret's keys and publishes their public halves only
    const jwks = await (await fetch(`${DISCOVERY_URL}/api/p2p/ticket-keys`)).json() as { keys: any[] }
    assert.deepEqual(jwks.keys.map((j) => j.kid).sort(), signing.map((j) => j.kid).sort(), 'discovery publishes the keys of the Secret the hook created')
    assert.ok(jwks.keys.every((j) => j.d == null), 'discovery published a private key')

    await k(cluster.kubectl, ['apply', '-n', NAMESPACE, '-f', '-'], JSON.stringify(authPoolManifest(AUTH_HOST_PORT)))
    // Ready only once the relay fetched the ticket keys from discovery's <api-url>/api/p2p/ticket-keys
    const authPool = await waitForPoolReady(cluster.kubectl, NAMESPACE, AUTH_POOL, 1, 180_000)
    const table = await k(cluster.kubectl, ['get', 'rp', AUTH_POOL, '-n', NAMESPACE])
    assert.match(table, new RegExp(`^${AUTH_POOL}\\s+1\\s+1\\s+1\\s+True\\s+true\\s`, 'm'), `the AUTH column shows true:\n${table}`)
    await waitForDiscovery(DISCOVERY_URL, authPool)
    const relay = authPool.status.relays[0]
    const relayAddr = multiaddr(relay.multiaddr)
    // an account through the admin API (the NodePort), with the admin secret from the hook's Secret
    const account = await createAccount({ api: DISCOVERY_URL, admin }, 'kind-auth')
    const peers: Libp2p[] = []
    try {
      const stranger = await plainPeer()
      peers.push(stranger)
      assert.equal((await hopRequest(stranger, relayAddr, RESERVE)).status, 202, 'a peer without a ticket was not refused (PERMISSION_DENIED)')
      const before = await relayCounters(cluster.kubectl, NAMESPACE, relay.pod)
      const listener = await ticketedPeer(DISCOVERY_URL, account.apiKey, relayAddr)
      peers.push(listener)
      await serveSink(listener)
      await reserveOn(listener, relayAddr)
      const dialer = await ticketedPeer(DISCOVERY_URL, account.apiKey, relayAddr)
      peers.push(dialer)
      const conn = await dialer.dial(relayAddr.encapsulate(`/p2p-circuit/p2p/${listener.peerId.toString()}`), { signal: AbortSignal.timeout(20_000) })
      const { sent, received } = await sendToSink(conn, 2 * 1024 * 1024)
      assert.deepEqual(received, sent, 'the payload arrived changed')
      const after = await relayCounters(cluster.kubectl, NAMESPACE, relay.pod)
      const relayed = { to_destination: after.to_destination - before.to_destination, to_source: after.to_source - before.to_source }
      assert.ok(relayed.to_destination >= sent.bytes, `the relay counted ${relayed.to_destination} B for ${sent.bytes} B sent`)
      // metered per account into the chart's Redis (flushed every second), read back through the admin API
      const metered = await poll('`pos-relay usage` to show the relayed bytes', async () => {
        const u = await meteredUsage(DISCOVERY_URL, admin, account.id)
        return u.to_destination >= relayed.to_destination && u.to_source >= relayed.to_source ? u : undefined
      }, 30_000)
      log(`accounts: the relay counted ${JSON.stringify(relayed)} bytes; pos-relay usage: ${JSON.stringify(metered)}`)
      assert.deepEqual({ to_destination: metered.to_destination, to_source: metered.to_source }, relayed)
      assert.equal(metered.circuits, 1)
    } finally {
      for (const p of peers) await Promise.resolve(p.stop()).catch(() => {})
    }
    // the kept cluster's relays (E2E_KIND_KEEP=1) are the open example pool's only
    await deletePool(cluster.kubectl, NAMESPACE, AUTH_POOL)
    await waitForDeregistered(DISCOVERY_URL, NAMESPACE, AUTH_POOL)
  })

  step('helm uninstall: the pre-delete hook removes the pools, no relay pod is left', async () => {
    await cluster.helm(['uninstall', RELEASE, '--namespace', NAMESPACE, '--wait', '--timeout', '5m'])
    const pools = await cluster.kubectl(['get', 'relaypools', '-A', '-o', 'name'])
    assert.equal(pools.stdout.trim(), '', `RelayPools left: ${pools.stdout}`)
    await poll('every relay pod to be gone', async () => {
      const pods = await k(cluster.kubectl, ['get', 'pods', '-A', '-l', 'app.kubernetes.io/component=relay', '-o', 'name'])
      return pods.trim() === '' ? true : undefined
    }, 120_000)
  }, { skip: KEEP ? 'E2E_KIND_KEEP=1: the release stays installed' : false })

  step(`charts/pos-relay/ci/*.yaml (${CI_FILES.length} files), each its own release with a one-relay pool: install, helm test (fails without a relay listed, then checks the relay), upgrade, helm test, uninstall (monitoring against ${PROMETHEUS_OPERATOR_MODULE.split('@')[1]!} of the Prometheus Operator's CRDs)`, async () => {
    for (const crd of await prometheusOperatorCrds()) await k(cluster.kubectl, ['apply', '--server-side', '-f', crd])
    // the images built here (no registry); not the main release's NodePort, which a second release would take again
    const { discovery: _, ...base } = helmValues(IMAGE, supply.overrides)
    for (const file of CI_FILES) {
      const t0 = Date.now()
      const tests = await installCiValuesFile(cluster, chart, base, file)
      log(`${file}: installed, tested, upgraded, tested, uninstalled in ${((Date.now() - t0) / 1000).toFixed(1)} s; helm test: ${/^relay .*$/m.exec(tests[0] ?? '')?.[0] ?? '?'}`)
    }
  }, { skip: KEEP ? 'E2E_KIND_KEEP=1: the release stays installed' : false })
})
