/**
 * RelayPool spec.auth, hermetic: a real kube-apiserver, the operator, real
 * Redis and `pos-relay discovery` with accounts on (ticket keys, tiers, admin
 * secret), and the relay started from the pod the operator rendered (args,
 * env from Secrets, the tiers ConfigMap mounted, as a kubelet would). The pod
 * is marked Ready only when the relay's own /readyz says so.
 *
 * - bad input: a pool whose ticket keys Secret is missing, then holds a
 *   private key: Degraded=AuthSecretInvalid, a Warning Event, no relay pod; the same for a tiers
 *   ConfigMap that is missing or holds tiers the relays would refuse;
 * - the example pool with spec.auth: an unticketed js peer is refused, a
 *   ticketed one reserves and relays; `pos-relay usage` equals the relay's
 *   byte counters; `pos-relay accounts disable` ends the circuit within 5 s.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { presentTicket } from '@pos-relay/client'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { freePort, scrapeMetric, startRedis, waitFor, type RedisServer } from '@pos-relay/testing'
import { createLibp2p, type Libp2p } from 'libp2p'
import { kubelet, runRelayContainer, startOperator, until, type CliProcess, type OperatorProc } from '../../../operator/test/kube-helpers.ts'
import { hopRequest, RESERVE } from '../../../relay-image/test/hop-client.ts'
import { createAccount, startAccountsDiscovery, ticketFor, type AccountsDiscovery } from '../../test/helpers/accounts-stack.ts'
import { runCli } from '../../test/helpers/cli.ts'
import { sendToSink, serveSink } from '../../test/helpers/transfer.ts'
import { applyExamplePool, EXAMPLE_POOL, getPool, setNodesPublicAddress, waitForPoolEvents, waitForPoolReady } from '../../shared/relaypool.ts'
import { NAMESPACE, PUBLIC_ADDRESS } from '../../kind/kind.ts'
import { CRD_FILE, ensureKubeBinaries, startControlPlane, type ControlPlane } from '../harness.ts'
import { k, poolFixture } from './helpers.ts'

const SECRET = 'relaypool-auth-' + Math.random().toString(36).slice(2)
const PERMISSION_DENIED = 202
const OK = 100
const MiB = 1024 * 1024

// Outside any test so no test timeout applies: the first run builds the binaries (~12 min).
await ensureKubeBinaries()

describe('RelayPool spec.auth end to end on a real API server', { timeout: 300_000 }, () => {
  let cp: ControlPlane
  let redis: RedisServer
  let dir: string
  let discovery: AccountsDiscovery
  let operator: OperatorProc
  let relay: (CliProcess & { ready: any, started: any }) | undefined
  let relayAddr: Multiaddr
  let relayMetricsPort: number
  const nodes: Libp2p[] = []

  const plainNode = async (): Promise<Libp2p> => {
    const node = await createLibp2p({ transports: [tcp(), circuitRelayTransport()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
    nodes.push(node)
    return node
  }
  /** a js peer that presented a ticket of `apiKey` to the relay */
  const ticketedNode = async (apiKey: string): Promise<Libp2p> => {
    const node = await plainNode()
    const relayId = (await node.dial(relayAddr)).remotePeer
    await presentTicket(node, relayId, await ticketFor(discovery.api, apiKey, node.peerId.toString()))
    return node
  }
  const adminEnv = (): Record<string, string> => ({ POS_RELAY_ADMIN_SECRET: discovery.admin })
  const condition = (pool: any, type: string): any => pool.status?.conditions?.find((c: any) => c.type === type)
  /** the pool's Degraded condition once it is AuthSecretInvalid with a message matching `pattern` */
  const authSecretInvalid = async (name: string, pattern: RegExp): Promise<any> => await until(`${name} Degraded matching ${pattern}`, async () => {
    const c = condition(await getPool(cp.kubectl, NAMESPACE, name), 'Degraded')
    return c?.status === 'True' && c.reason === 'AuthSecretInvalid' && pattern.test(c.message) ? c : undefined
  }, 30_000)

  before(async () => {
    cp = await startControlPlane({ controllerManager: true, crds: [CRD_FILE] })
    redis = await startRedis()
    dir = await mkdtemp(join(tmpdir(), 'pos-relay-pool-auth-'))
    discovery = await startAccountsDiscovery({ dir, redisUrl: redis.url, p2pSecret: SECRET })
    // what the chart creates: the discovery Secret (with the API URL relays fetch ticket keys from) and the tiers
    await poolFixture(cp, { namespace: NAMESPACE, redisUrl: redis.url, p2pSecret: SECRET, apiUrl: discovery.api, nodes: [{ name: 'node-1', internalIP: '10.89.0.2' }] })
    await k(cp, ['create', 'configmap', 'pos-relay-tiers', '-n', NAMESPACE, `--from-file=tiers.json=${discovery.tiersFile}`])
    await setNodesPublicAddress(cp.kubectl, PUBLIC_ADDRESS)
    operator = await startOperator(cp, ['--relay-image', 'pos-relay:test'])
  }, { timeout: 180_000 })

  after(async () => {
    for (const n of nodes) await Promise.resolve(n.stop()).catch(() => {})
    await relay?.kill('SIGKILL')
    await operator?.kill('SIGKILL')
    await discovery?.proc.kill('SIGKILL')
    await redis?.stop()
    await cp?.stop()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('a pool whose ticket keys Secret is missing, then holds a private key: AuthSecretInvalid, a Warning Event, no relay pod', async () => {
    const pool = {
      apiVersion: 'pos-relay.io/v1alpha1',
      kind: 'RelayPool',
      metadata: { name: 'bad-keys', namespace: NAMESPACE },
      spec: { replicas: 1, hostPort: 17373, discovery: { redisUrlSecretRef: { name: 'pos-relay-discovery' } }, auth: { required: true, ticketKeysSecretRef: { name: 'offline-keys' } } }
    }
    await k(cp, ['apply', '-f', '-'], JSON.stringify(pool))
    const degraded = async (pattern: RegExp): Promise<any> => await authSecretInvalid('bad-keys', pattern)
    await degraded(/Secret pos-relay\/offline-keys not found/)
    const events = await waitForPoolEvents(cp.kubectl, NAMESPACE, 'bad-keys', ['AuthSecretInvalid'])
    assert.equal(events.find((e: any) => e.reason === 'AuthSecretInvalid').type, 'Warning')
    // discovery's signing keys as the "public" JWKS: a private key
    const signing = JSON.parse(await readFile(discovery.keysFile, 'utf8'))
    await k(cp, ['create', 'secret', 'generic', 'offline-keys', '-n', NAMESPACE, `--from-literal=jwks.json=${JSON.stringify({ keys: signing })}`])
    const c = await degraded(/private key/)
    assert.ok(!c.message.includes(signing[0].d), 'the condition never shows key material')
    const p = await getPool(cp.kubectl, NAMESPACE, 'bad-keys')
    assert.equal(condition(p, 'Progressing').reason, 'AuthSecretInvalid')
    // nothing half-applied: no relay pod for this spec (identity Secrets hold no pool data and may exist)
    const pods = JSON.parse(await k(cp, ['get', 'pods', '-n', NAMESPACE, '-l', 'pos-relay.io/pool=bad-keys', '-o', 'json']))
    assert.deepEqual(pods.items, [])
    await k(cp, ['delete', 'relaypool', 'bad-keys', '-n', NAMESPACE])
  })

  it('a pool whose tiers ConfigMap is missing, then holds tiers the relays would refuse: AuthSecretInvalid naming the field, no relay pod', async () => {
    const pool = {
      apiVersion: 'pos-relay.io/v1alpha1',
      kind: 'RelayPool',
      metadata: { name: 'bad-tiers', namespace: NAMESPACE },
      spec: { replicas: 1, hostPort: 17374, discovery: { redisUrlSecretRef: { name: 'pos-relay-discovery' }, p2pSecretRef: { name: 'pos-relay-discovery' } }, auth: { required: true, tiersConfigMapRef: { name: 'odd-tiers' } } }
    }
    await k(cp, ['apply', '-f', '-'], JSON.stringify(pool))
    const degraded = async (pattern: RegExp): Promise<any> => await authSecretInvalid('bad-tiers', pattern)
    await degraded(/ConfigMap pos-relay\/odd-tiers not found/)
    await k(cp, ['create', 'configmap', 'odd-tiers', '-n', NAMESPACE, '--from-literal=tiers.json={"free":{"max_reservations":0}}'])
    await degraded(/odd-tiers key tiers\.json is not a valid tiers document: .*max_reservations/)
    const pods = JSON.parse(await k(cp, ['get', 'pods', '-n', NAMESPACE, '-l', 'pos-relay.io/pool=bad-tiers', '-o', 'json']))
    assert.deepEqual(pods.items, [])
    await k(cp, ['delete', 'relaypool', 'bad-tiers', '-n', NAMESPACE])
    await k(cp, ['delete', 'configmap', 'odd-tiers', '-n', NAMESPACE])
  })

  it('the example pool with spec.auth: the rendered relay requires tickets, with the accounts Redis and tiers from the cluster, and becomes Ready', async () => {
    // the kind config maps the node's 7373 to 127.0.0.1:7373; here a free port stands for it
    const hostPort = await freePort()
    await applyExamplePool(cp.kubectl, NAMESPACE, { replicas: 1, hostPort, auth: { required: true, tiersConfigMapRef: { name: 'pos-relay-tiers' }, meteringIntervalSeconds: 1 } })
    const pod = await until('relay pod', async () => {
      const r = await cp.kubectl(['get', 'pod', `${EXAMPLE_POOL}-0`, '-n', NAMESPACE, '-o', 'json'])
      return r.code === 0 ? JSON.parse(r.stdout) : undefined
    })
    const c = pod.spec.containers[0]
    const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]))
    assert.equal(env.POS_RELAY_AUTH, 'true')
    assert.deepEqual(env.POS_RELAY_AUTH_REDIS_URL, { secretKeyRef: { name: 'pos-relay-discovery', key: 'redis-url' } })
    assert.equal(env.POS_RELAY_TIERS_FILE, '/var/run/pos-relay/tiers/tiers.json')
    assert.ok(!JSON.stringify(pod).includes(redis.url), 'the Redis URL never appears in the pod spec')
    relay = await runRelayContainer(cp, pod, dir, { port: hostPort })
    relayMetricsPort = Number(new URL(relay.started.metrics).port)
    // the relay fetched the ticket keys from discovery's <api_url>/api/p2p/ticket-keys: only then is it ready
    await waitFor(async () => (await fetch(`http://127.0.0.1:${relayMetricsPort}/readyz`)).status === 200, { timeoutMs: 20_000, message: 'relay not ready' })
    await kubelet(cp, NAMESPACE, pod.metadata.name, true)
    const ready = await waitForPoolReady(cp.kubectl, NAMESPACE, EXAMPLE_POOL, 1)
    relayAddr = multiaddr(ready.status.relays[0].multiaddr.replace(`/ip4/${PUBLIC_ADDRESS}/`, '/ip4/127.0.0.1/'))
    const wide = await k(cp, ['get', 'rp', EXAMPLE_POOL, '-n', NAMESPACE])
    assert.match(wide, /^relays\s+1\s+1\s+1\s+True\s+true\s/m, 'the AUTH column shows true')
  })

  it('refuses an unticketed js peer and accepts a ticketed one', async () => {
    const account = await createAccount(discovery, 'pool-auth')
    const stranger = await plainNode()
    assert.equal((await hopRequest(stranger, relayAddr, RESERVE)).status, PERMISSION_DENIED)
    const holder = await ticketedNode(account.apiKey)
    assert.equal((await hopRequest(holder, relayAddr, RESERVE)).status, OK)
  })

  it('meters a ticketed circuit: `pos-relay usage` equals the relay\'s byte counters; `pos-relay accounts disable` ends the circuit within 5 s', async () => {
    const account = await createAccount(discovery, 'pool-meter')
    const counted = async (direction: string): Promise<number> => await scrapeMetric(relayMetricsPort, new RegExp(`^pos_relay_relayed_bytes_total\\{direction="${direction}"\\} (\\d+)`, 'm'))
    const before = { to_destination: await counted('to_destination'), to_source: await counted('to_source') }
    const listener = await ticketedNode(account.apiKey)
    await serveSink(listener)
    await (listener as any).components.transportManager.listen([relayAddr.encapsulate('/p2p-circuit')])
    const dialer = await ticketedNode(account.apiKey)
    const conn = await dialer.dial(relayAddr.encapsulate(`/p2p-circuit/p2p/${listener.peerId}`))
    const { sent, received } = await sendToSink(conn, 3 * MiB)
    assert.deepEqual(received, sent)
    // the relay's counters and the account's metered usage (flushed every second) agree to the byte
    const relayed = { to_destination: await counted('to_destination') - before.to_destination, to_source: await counted('to_source') - before.to_source }
    assert.ok(relayed.to_destination >= 3 * MiB, `relayed ${relayed.to_destination} B for 3 MiB`)
    const usage = async (): Promise<{ to_destination: number, to_source: number, circuits: number }> => {
      const r = await runCli(['usage', '--account', account.id, '--api-url', discovery.api, '--from', new Date(Date.now() - 3600_000).toISOString()], { env: adminEnv() })
      assert.equal(r.code, 0, r.stderr)
      const rows = JSON.parse(r.stdout) as any[]
      return { to_destination: rows.reduce((n, x) => n + x.bytes_to_destination, 0), to_source: rows.reduce((n, x) => n + x.bytes_to_source, 0), circuits: rows.reduce((n, x) => n + x.circuits, 0) }
    }
    await waitFor(async () => (await usage()).to_destination >= relayed.to_destination, { timeoutMs: 10_000, message: 'usage not flushed' })
    const metered = await usage()
    process.stdout.write(`# relay counted ${JSON.stringify(relayed)}; pos-relay usage: ${JSON.stringify(metered)}\n`)
    assert.deepEqual({ to_destination: metered.to_destination, to_source: metered.to_source }, relayed)
    assert.equal(metered.circuits, 1)

    // a second circuit stays open; disabling the account must end it
    const conn2 = await dialer.dial(relayAddr.encapsulate(`/p2p-circuit/p2p/${listener.peerId}`))
    assert.equal(conn2.status, 'open')
    // from the start of the command (its own start-up included) to the circuit's end: at most 5 s
    const t0 = Date.now()
    const disabled = await runCli(['accounts', 'disable', account.id, '--api-url', discovery.api], { env: adminEnv() })
    assert.equal(disabled.code, 0, disabled.stderr)
    const cli = Date.now() - t0
    await waitFor(() => conn2.status !== 'open', { timeoutMs: Math.max(1, 5000 - cli), intervalMs: 50, message: 'the circuit was not ended within 5 s of `pos-relay accounts disable`' })
    process.stdout.write(`# circuit ended ${Date.now() - t0} ms after \`pos-relay accounts disable\` started (the command itself took ${cli} ms)\n`)
    // and the account cannot reserve again
    assert.equal((await hopRequest(listener, relayAddr, RESERVE)).status, PERMISSION_DENIED)
  })
})
