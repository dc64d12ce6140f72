/**
 * Every PromQL expression of the chart's Grafana dashboards returns data when a
 * real Prometheus (Debian's `prometheus`) scrapes a running relay, discovery
 * API and operator. Traffic first: two SDK peers reserve on the relay and relay
 * bytes, a dial to a peer without a reservation is denied, and the relayed
 * connection is closed, so every counter has series.
 *
 * Scrape targets carry the labels the chart's PodMonitor adds in a cluster
 * (namespace, pool, pod, node), so the dashboards' variables resolve too:
 * each expression is run with its variables substituted as Grafana does
 * (dashboard-queries.ts), with `All` selected and, for the relay table, with
 * one pod picked. Another controller is scraped beside the operator
 * (`cert-manager`, exporting the same controller-runtime metric names, its own
 * leader among them): the operator dashboard must not count it.
 * The operator is part of it: a CLI without the `operator` command fails the
 * file (it used to skip the operator half).
 *
 * The chart's alerts (files/alerts.yaml) are loaded too, with every `for`
 * set to 0 (the promtool unit tests cover the durations), and the last test
 * fires every one of them for real: a relay without ticket keys, a full relay,
 * the discovery Redis killed (5xx, store down, relays limiting rates alone,
 * usage batches piling up on the auth relay while a circuit goes on relaying,
 * a relay pod turning Ready that the operator cannot register), the example
 * pool whose other relay never becomes Ready (no kubelet), a limits file the
 * first relay refuses, a pool whose pods a ResourceQuota forbids (reconcile
 * errors), and a second operator whose Lease a vanished replica holds.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { createRelayPeer, isRelayed, presentTicket, type RelayPeer } from '@pos-relay/client'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { SINK_PROTOCOL, sendToSink, serveSink } from '../../test/helpers/transfer.ts'
import { freePort, spawnLines, startRedis, waitFor, type LineProcess, type RedisServer } from '@pos-relay/testing'
import { CHART_DIR, CRD_FILE, REPO_ROOT, ensureKubeBinaries, startControlPlane, type ControlPlane } from '../harness.ts'
import { k, kJson, poll } from './helpers.ts'
import { kubelet } from '../../../operator/test/kube-helpers.ts'
import { startPrometheus, type Prometheus, type ScrapeTarget } from './prometheus.ts'
import { assertAllData, dashboardExpressions, dashboardVariables, followDashboardUrl, resolveVariables, substitute, type Values } from './dashboard-queries.ts'

const CLI = join(REPO_ROOT, 'packages', 'cli', 'bin', 'pos-relay.js')
const SECRET = 'dashboards-' + Math.random().toString(36).slice(2)
const PROTOCOL = '/pos-relay-test/drain/1.0.0'
const ADMIN = 'dashboards-admin-' + Math.random().toString(36).slice(2)
const MiB = 1024 * 1024
/** `tiny` has a monthly quota small enough to be cut by one transfer */
const TIERS = {
  free: { name: 'free', max_reservations: 8, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 },
  tiny: { name: 'tiny', max_reservations: 4, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 1 * MiB }
}

// ------------------------------------------------------------------ processes

/** `pos-relay ...args`, tracked by @pos-relay/testing (killed when the test process exits); waits see its logs too */
function cli (name: string, args: string[], env: Record<string, string> = {}): LineProcess {
  return spawnLines(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, label: name, jsonOnStderr: true })
}

/**
 * The CLI must have the operator command: without it half of this test (the
 * operator dashboard) could not run, and that is a failure, not a skip. A
 * `--help` that fails to run throws here, failing the file.
 */
function assertCliHasOperator (): void {
  const help = execFileSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' })
  assert.match(help, /^\s+operator\b/m, `pos-relay --help lists no operator command:\n${help}`)
}

// ------------------------------------------------------------------ test

assertCliHasOperator()
// Outside any test so no test timeout applies: the first run builds the binaries (~12 min).
await ensureKubeBinaries()

describe('Grafana dashboards against a real Prometheus', { timeout: 420_000 }, () => {
  let dir: string
  let redis: RedisServer
  let discovery: LineProcess
  let relay: LineProcess
  let authRelay: LineProcess
  let keylessRelay: LineProcess
  const plainNodes: Libp2p[] = []
  let operator: LineProcess | undefined
  let prometheus: Prometheus
  /** what Prometheus scrapes (the last test adds a target) */
  const targets: ScrapeTarget[] = []
  let cp: ControlPlane | undefined
  const peers: RelayPeer[] = []
  let relayAddr: ReturnType<typeof multiaddr>
  let limitsFile: string // the first relay's --limits-file (good at start; the last test writes one it refuses)
  let authRelayAddr: ReturnType<typeof multiaddr>
  let discoveryApi: string
  /** pod label → the relay's metrics port, where its /readyz answers too */
  const relayPorts: Record<string, number> = {}
  let otherController: Server | undefined
  /** a second operator whose Lease someone else holds (the last test) */
  let standbyOperator: LineProcess | undefined
  /** a peer on the auth relay with a ticket of the account `apiKey` */
  let ticketedPeer: (apiKey: string) => Promise<Libp2p>
  /** the last test's sender on the auth relay */
  let trickling: NodeJS.Timeout | undefined
  /** the API key of a `free` account (no monthly quota) */
  let freeKey: string

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pos-relay-dashboards-'))
    redis = await startRedis()

    // discovery + relay, as in production (pos-relay discovery --redis; init + run)
    const discoveryPort = await freePort()
    const discoveryUrl = `http://127.0.0.1:${discoveryPort}`
    // with accounts: ticket keys, tiers and an admin secret
    const keysFile = join(dir, 'ticket-keys.json')
    execFileSync(process.execPath, [CLI, 'keys', 'generate', '--out', keysFile])
    const publicKeysFile = join(dir, 'ticket-keys.public.json')
    writeFileSync(publicKeysFile, execFileSync(process.execPath, [CLI, 'keys', 'public', '--in', keysFile]))
    const tiersFile = join(dir, 'tiers.json')
    writeFileSync(tiersFile, JSON.stringify(TIERS))
    discovery = cli('discovery', ['discovery', '--host', '127.0.0.1', '--port', String(discoveryPort), '--redis', redis.url, '--ttl', '10', '--ticket-keys-file', keysFile, '--tiers-file', tiersFile],
      { P2P_SECRET: SECRET, ADMIN_SECRET: ADMIN })
    await discovery.waitForJson((o) => o.event === 'discovery_ready')
    const relayPort = await freePort()
    const relayMetricsPort = await freePort()
    const config = join(dir, 'relay.json')
    execFileSync(process.execPath, [CLI, 'init', '--config', config, '--api-url', discoveryUrl, '--port', String(relayPort)], { input: `${SECRET}\n` })
    // room for the two SDK peers' reservations only: a third is refused at capacity (PosRelayReservationsRefusedAtCapacity);
    // a limits file as a RelayPool's relays have (applied at start; PosRelayLimitsReloadRefused when the last test breaks it)
    limitsFile = join(dir, 'limits.json')
    writeFileSync(limitsFile, JSON.stringify({ limits: { max_circuits: 64 }, rate_limits: {} }))
    relay = cli('relay', ['run', '--config', config, '--host', '127.0.0.1', '--announce', `/ip4/127.0.0.1/tcp/${relayPort}`,
      '--metrics-host', '127.0.0.1', '--metrics-port', String(relayMetricsPort), '--drain-seconds', '1', '--max-reservations', '2', '--limits-file', limitsFile])
    const ready = await relay.waitForJson((o) => o.event === 'relay_ready')
    await relay.waitForJson((o) => o.event === 'limits_reloaded')
    relayAddr = multiaddr(`/ip4/127.0.0.1/tcp/${relayPort}/p2p/${ready.peer_id as string}`)
    // a second relay with auth on (tickets, metering and quotas in the same Redis); not registered with
    // discovery, so the SDK peers below keep to the first one
    const authConfig = join(dir, 'relay-auth.json')
    execFileSync(process.execPath, [CLI, 'init', '--config', authConfig], { input: `${SECRET}\n` })
    const authMetricsPort = await freePort()
    authRelay = cli('relay-auth', ['run', '--config', authConfig, '--host', '127.0.0.1', '--port', String(await freePort()),
      '--metrics-host', '127.0.0.1', '--metrics-port', String(authMetricsPort), '--drain-seconds', '1',
      '--auth', '--redis', redis.url, '--tiers-file', tiersFile, '--ticket-keys-file', publicKeysFile, '--metering-interval', '1'])
    const authReady = await authRelay.waitForJson((o) => o.event === 'relay_ready')
    authRelayAddr = multiaddr(authReady.addrs[0])
    // a third relay with auth on whose ticket keys URL answers nothing: never Ready (PosRelayTicketKeysMissing)
    const keylessConfig = join(dir, 'relay-keyless.json')
    execFileSync(process.execPath, [CLI, 'init', '--config', keylessConfig], { input: `${SECRET}\n` })
    const keylessMetricsPort = await freePort()
    keylessRelay = cli('relay-keyless', ['run', '--config', keylessConfig, '--host', '127.0.0.1', '--port', String(await freePort()),
      '--metrics-host', '127.0.0.1', '--metrics-port', String(keylessMetricsPort), '--drain-seconds', '1',
      '--auth', '--redis', redis.url, '--tiers-file', tiersFile, '--ticket-keys-url', `http://127.0.0.1:${await freePort()}/api/p2p/ticket-keys`])
    await waitFor(async () => (await fetch(`http://127.0.0.1:${keylessMetricsPort}/metrics`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000, message: 'keyless relay /metrics' })
    discoveryApi = discoveryUrl

    // the operator against a real API server, with one pool to reconcile
    let operatorTarget = ''
    {
      cp = await startControlPlane({ crds: [CRD_FILE] })
      const metricsPort = await freePort()
      await k(cp, ['create', 'secret', 'generic', 'pos-relay-discovery', '-n', 'default', `--from-literal=redis-url=${redis.url}`, `--from-literal=p2p-secret=${SECRET}`])
      await k(cp, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'kubernetes.io/hostname': 'node-a' } }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.10' }] } }))
      await k(cp, ['apply', '-n', 'default', '-f', join(REPO_ROOT, 'examples', 'relaypool.yaml')])
      operator = cli('operator', ['operator', '--metrics-host', '127.0.0.1', '--metrics-port', String(metricsPort)],
        { ...cp.env, POD_NAMESPACE: 'default', POD_NAME: 'operator-0', LEADER_ELECT: 'true', RELAY_IMAGE: 'pos-relay:test', LOG_LEVEL: 'info' })
      operatorTarget = `127.0.0.1:${metricsPort}`
      await waitFor(async () => (await fetch(`http://${operatorTarget}/metrics`).catch(() => undefined))?.ok === true, { timeoutMs: 30_000, message: 'operator /metrics' })
    }

    // another controller in the cluster, with controller-runtime's metric names (what cert-manager exports)
    otherController = createServer((_req, res) => {
      res.setHeader('content-type', 'text/plain; version=0.0.4')
      res.end(['leader_election_master_status{name="cert-manager-controller"} 1', 'workqueue_depth{name="certificates"} 7',
        'controller_runtime_reconcile_total{controller="certificates",result="success"} 40', 'controller_runtime_reconcile_errors_total{controller="certificates"} 3',
        'process_resident_memory_bytes 123456789', ''].join('\n'))
    })
    const otherPort = await freePort()
    await new Promise<void>((resolve) => otherController!.listen(otherPort, '127.0.0.1', resolve))
    Object.assign(relayPorts, { 'relays-0': relayMetricsPort, 'relays-1': authMetricsPort, 'relays-2': keylessMetricsPort })

    // Prometheus, scraping all of them every second, with the chart's alerts (`for` 0: fired by the last test)
    const rules = parseYaml(readFileSync(join(CHART_DIR, 'files', 'alerts.yaml'), 'utf8'))
    for (const g of rules.groups) for (const r of g.rules) r.for = '0s'
    writeFileSync(join(dir, 'alerts.yaml'), stringifyYaml(rules))
    const target = (job: string, port: number | string, labels: Record<string, string>): ScrapeTarget => ({ job, target: typeof port === 'number' ? `127.0.0.1:${port}` : port, labels })
    targets.push(
      // the labels the chart's PodMonitor gives relay series in a cluster
      target('pos-relay-relays', relayMetricsPort, { namespace: 'pos-relay', pool: 'relays', pod: 'relays-0', node: 'node-a' }),
      target('pos-relay-relays-auth', authMetricsPort, { namespace: 'pos-relay', pool: 'relays', pod: 'relays-1', node: 'node-b' }),
      target('pos-relay-relays-keyless', keylessMetricsPort, { namespace: 'pos-relay', pool: 'relays', pod: 'relays-2', node: 'node-c' }),
      target('pos-relay-discovery', discoveryPort, { namespace: 'pos-relay', pod: 'pos-relay-discovery-0' }),
      target('pos-relay-operator', operatorTarget, { namespace: 'pos-relay', pod: 'pos-relay-operator-0' }),
      target('cert-manager', otherPort, { namespace: 'cert-manager', pod: 'cert-manager-0' }))
    prometheus = await startPrometheus({ dir, port: await freePort(), ruleFiles: [join(dir, 'alerts.yaml')], targets })

    // traffic: a reservation, a relayed transfer, a denied dial, a closed circuit
    const a = await createRelayPeer({ discoveryUrl, listen: ['/ip4/127.0.0.1/tcp/0'] })
    const b = await createRelayPeer({ discoveryUrl, listen: ['/ip4/127.0.0.1/tcp/0'] })
    peers.push(a, b)
    await a.node.handle(PROTOCOL, async (stream) => {
      let bytes = 0
      for await (const chunk of stream) bytes += chunk.byteLength
      stream.send(new TextEncoder().encode(String(bytes)))
      await stream.close()
    }, { runOnLimitedConnection: true })
    await waitFor(() => a.relays.circuitAddresses().length > 0, { timeoutMs: 15_000, message: 'reservation' })
    const conn = await b.relays.dial(a.node.peerId)
    assert.ok(isRelayed(conn))
    const stream = await conn.newStream(PROTOCOL, { runOnLimitedConnection: true })
    const chunk = new Uint8Array(64 * 1024)
    for (let i = 0; i < 8; i++) if (!stream.send(chunk)) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
    await stream.close()
    let reply = ''
    for await (const c of stream) reply += new TextDecoder().decode(c.subarray())
    assert.equal(reply, String(8 * 64 * 1024))
    await conn.close()
    const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    await assert.rejects(b.node.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relayPort}/p2p/${ready.peer_id}/p2p-circuit/p2p/${stranger.toString()}`)))

    // the account side on the auth relay: tickets issued and refused, metered bytes, a quota cut and a
    // circuit refused over quota, a revocation delivered
    const admin = async (path: string, body?: unknown): Promise<any> => {
      const res = await fetch(`${discoveryUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) })
      assert.ok(res.ok, `${path}: ${res.status} ${await res.clone().text()}`)
      return await res.json()
    }
    const ticketFor = async (apiKey: string, peerId: string): Promise<Response> => await fetch(`${discoveryUrl}/api/p2p/tickets`, {
      method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: peerId })
    })
    const ticketed = async (apiKey: string): Promise<Libp2p> => {
      const node = await createLibp2p({ transports: [tcp(), circuitRelayTransport()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
      plainNodes.push(node)
      const res = await ticketFor(apiKey, node.peerId.toString())
      const body = await res.text()
      assert.equal(res.status, 200, body)
      await presentTicket(node, (await node.dial(authAddr)).remotePeer, (JSON.parse(body) as { ticket: string }).ticket)
      return node
    }
    const authAddr = authRelayAddr
    ticketedPeer = ticketed
    freeKey = (await admin('/api/admin/accounts', { name: 'dashboards-free', tier: 'free' })).api_key
    const tiny = await admin('/api/admin/accounts', { name: 'dashboards-tiny', tier: 'tiny' })
    assert.equal((await ticketFor('pra_not-a-key', peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())).status, 401)
    const listener = await ticketed(tiny.api_key)
    await serveSink(listener)
    await (listener as any).components.transportManager.listen([authAddr.encapsulate('/p2p-circuit')])
    const dialer = await ticketed(tiny.api_key)
    // 2 MiB through a 1 MiB quota: metered, then cut
    await assert.rejects(sendToSink(await dialer.dial(authAddr.encapsulate(`/p2p-circuit/p2p/${listener.peerId}`)), 2 * MiB))
    await waitFor(async () => /^pos_relay_circuit_ends_total\{reason="quota"\} [1-9]/m.test(await (await fetch(`http://127.0.0.1:${authMetricsPort}/metrics`)).text()), { timeoutMs: 10_000, message: 'circuit cut at the quota' })
    // once the usage is flushed (metering interval 1 s), the next circuit is refused over quota
    await waitFor(async () => {
      await dialer.dial(authAddr.encapsulate(`/p2p-circuit/p2p/${listener.peerId}`)).then(async (c) => { await c.close() }, () => {})
      return /^pos_relay_denials_total\{reason="quota"\} [1-9]/m.test(await (await fetch(`http://127.0.0.1:${authMetricsPort}/metrics`)).text())
    }, { timeoutMs: 15_000, intervalMs: 1000, message: 'circuit refused over quota' })
    await admin(`/api/admin/accounts/${tiny.account.id}/disable`)
    await waitFor(async () => /^pos_relay_revocations_total\{kind="account",result="applied"\} [1-9]/m.test(await (await fetch(`http://127.0.0.1:${authMetricsPort}/metrics`)).text()), { timeoutMs: 10_000, message: 'revocation delivered' })
  }, { timeout: 180_000 })

  after(async () => {
    clearInterval(trickling)
    for (const p of peers) await p.stop().catch(() => {})
    for (const n of plainNodes) await Promise.resolve(n.stop()).catch(() => {})
    for (const p of [authRelay, keylessRelay, standbyOperator, operator, relay, discovery]) await p?.kill('SIGTERM', 5000)
    await prometheus?.stop()
    await new Promise((resolve) => otherController?.close(resolve) ?? resolve(undefined))
    await cp?.stop()
    await redis?.stop()
    if (dir != null) rmSync(dir, { recursive: true, force: true })
  })

  const query = async (expr: string): Promise<any[]> => await prometheus.query(expr)

  it('the fleet overview dashboard: every expression returns data, its variables resolve', async () => {
    const exprs = dashboardExpressions('fleet-overview.json')
    assert.ok(exprs.length >= 30, `only ${exprs.length} expressions`)
    const { values, found } = await resolveVariables(dashboardVariables('fleet-overview.json'), query)
    // the labels the PodMonitor sets; discovery: its job only
    assert.deepEqual(found, { namespace: ['pos-relay'], pool: ['relays'], pod: ['relays-0', 'relays-1', 'relays-2'], discovery: ['pos-relay-discovery'] })
    await assertAllData(exprs, values, query)
  })

  it('the fleet overview\'s relay table: one row per relay, Ready as its /readyz says; a pod picked drills down to it', async () => {
    const tableExprs = dashboardExpressions('fleet-overview.json').filter((e) => e.table === true)
    assert.deepEqual(tableExprs.map((e) => e.refId), ['A', 'B', 'C', 'D', 'E', 'F', 'G'])
    const vars = dashboardVariables('fleet-overview.json')
    const { values } = await resolveVariables(vars, query)
    const column = async (refId: string, v: Values): Promise<Record<string, number>> => Object.fromEntries((await query(substitute(tableExprs.find((e) => e.refId === refId)!.expr, v)))
      .map((r) => [r.metric.pod as string, Number(r.value[1])]))
    // A: Ready, B: registered, C: draining, D: reservations
    const readyz = async (pod: string): Promise<number> => (await fetch(`http://127.0.0.1:${relayPorts[pod]}/readyz`)).status === 200 ? 1 : 0
    const expected = Object.fromEntries(await Promise.all(Object.keys(relayPorts).map(async (pod) => [pod, await readyz(pod)])))
    assert.deepEqual(expected, { 'relays-0': 1, 'relays-1': 1, 'relays-2': 0 }, 'the keyless relay is the one not Ready')
    assert.deepEqual(await column('A', values), expected)
    assert.deepEqual(await column('B', values), { 'relays-0': 1, 'relays-1': 0, 'relays-2': 0 }, 'only the relay that registers itself is registered')
    assert.deepEqual(await column('C', values), { 'relays-0': 0, 'relays-1': 0, 'relays-2': 0 })
    assert.ok(((await column('D', values))['relays-0'] ?? 0) >= 1, 'the SDK peers\' reservations are on relays-0')
    // drill-down: the pod picked, every table column and every per-relay panel has that pod only
    const one = (await resolveVariables(vars, query, { pod: 'relays-1' })).values
    for (const e of tableExprs) assert.deepEqual(Object.keys(await column(e.refId!, one)), ['relays-1'], e.expr)
    for (const e of dashboardExpressions('fleet-overview.json').filter((x) => / by relay$/.test(x.panel))) {
      const pods = new Set((await query(substitute(e.expr, one))).map((r) => r.metric.pod))
      assert.deepEqual([...pods], ['relays-1'], `${e.panel}: ${substitute(e.expr, one)}`)
    }
  })

  it('the traffic shows up in the numbers the dashboard plots', async () => {
    const value = async (expr: string): Promise<number> => Number((await query(expr))[0]?.value[1] ?? NaN)
    assert.ok(await value('sum(pos_relay_relayed_bytes_total{direction="to_destination"})') >= 8 * 64 * 1024)
    assert.ok(await value('sum(pos_relay_reservations_total{result="ok"})') >= 2)
    assert.ok(await value('sum(pos_relay_denials_total{reason="no_reservation"})') >= 1)
    assert.ok(await value('sum(pos_relay_circuit_ends_total)') >= 1)
    assert.equal(await value('sum(pos_relay_registered)'), 1)
    assert.ok(await value('max(pos_relay_discovery_relays_listed)') >= 1)
    // the account side (auth relay): fleet totals, no account label anywhere
    assert.ok(await value('sum(pos_relay_discovery_ticket_requests_total{result="ok"})') >= 2)
    assert.ok(await value('sum(pos_relay_discovery_ticket_requests_total{result="unauthorized"})') >= 1)
    assert.ok(await value('sum(pos_relay_tickets_total{result="ok"})') >= 2)
    assert.ok(await value('sum(pos_relay_metered_bytes_total)') >= 1 * MiB, 'bytes metered up to the quota')
    assert.ok(await value('sum(pos_relay_circuit_ends_total{reason="quota"})') >= 1)
    assert.ok(await value('sum(pos_relay_denials_total{reason="quota"})') >= 1)
    assert.ok(await value('sum(pos_relay_revocations_total{kind="account",result="applied"})') >= 1)
    assert.deepEqual(await query('count({__name__=~"pos_relay_.*", account!=""})'), [], 'no series has an account label')
  })

  it('the operator dashboard: every expression returns data, scoped to the operator (another controller is never counted)', async () => {
    const exprs = dashboardExpressions('operator.json')
    assert.ok(exprs.length >= 14, `only ${exprs.length} expressions`)
    const { values, found } = await resolveVariables(dashboardVariables('operator.json'), query)
    assert.deepEqual(found, { namespace: ['pos-relay'], job: ['pos-relay-operator'], pod: ['pos-relay-operator-0'] })
    await assertAllData(exprs, values, query)
    // cert-manager's leader is scraped too (unscoped, the stat would read 2)
    assert.equal(Number((await query('sum(leader_election_master_status)'))[0].value[1]), 2, 'the other controller\'s leader is in Prometheus')
    const stat = async (panel: string): Promise<number> => Number((await query(substitute(exprs.find((e) => e.panel === panel)!.expr, values)))[0].value[1])
    assert.equal(await stat('Leaders'), 1, 'exactly one leader: the operator\'s')
    assert.equal(await stat('Replicas scraped'), 1)
    assert.ok(await stat('Queue depth') < 7, 'cert-manager\'s queue is not counted')
    for (const e of exprs) {
      for (const r of await query(substitute(e.expr, values))) {
        assert.notEqual(r.metric.job, 'cert-manager', `${e.panel}: ${e.expr}`)
        assert.notEqual(r.metric.controller, 'certificates', `${e.panel}: ${e.expr}`)
      }
    }
  })

  // last: it kills Redis
  it('the alerts fire for real (for: 0), each for what provoked it', async () => {
    const firing = async (): Promise<Set<string>> => new Set((await query('ALERTS{alertstate="firing"}')).map((r) => r.metric.alertname as string))
    const plainNode = async (): Promise<Libp2p> => {
      const node = await createLibp2p({ transports: [tcp(), circuitRelayTransport()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
      plainNodes.push(node)
      return node
    }
    // node-a turns Ready (the test plays its kubelet and the node lifecycle controller): the pools' relay pods are placed
    const ts = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    await k(cp!, ['patch', 'node', 'node-a', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'test node', lastHeartbeatTime: ts, lastTransitionTime: ts }] } })])
    await k(cp!, ['taint', 'nodes', 'node-a', 'node.kubernetes.io/not-ready:NoSchedule-'])
    // a third reservation on the relay that has room for two
    const third = await plainNode()
    await assert.rejects((third as any).components.transportManager.listen([relayAddr.encapsulate('/p2p-circuit')]))
    // usage that goes on while the accounts Redis is away: an open circuit on the auth relay (a `free` account)
    // sends a chunk every 200 ms; one batch is cut per 1 s metering interval and none is written (PosRelayMeteringBacklog)
    const sink = await ticketedPeer(freeKey)
    await serveSink(sink)
    await (sink as any).components.transportManager.listen([authRelayAddr.encapsulate('/p2p-circuit')])
    const trickle = await (await (await ticketedPeer(freeKey)).dial(authRelayAddr.encapsulate(`/p2p-circuit/p2p/${sink.peerId}`)))
      .newStream(SINK_PROTOCOL, { runOnLimitedConnection: true })
    trickling = setInterval(() => { if (trickle.status === 'open') trickle.send(new Uint8Array(1024)) }, 200)
    // the operator cannot create a pool's relay pod: the namespace's ResourceQuota allows none (PosRelayOperatorReconcileErrors)
    const examplePool = parseYaml(readFileSync(join(REPO_ROOT, 'examples', 'relaypool.yaml'), 'utf8'))
    await k(cp!, ['create', 'namespace', 'quota'])
    await k(cp!, ['create', 'secret', 'generic', 'pos-relay-discovery', '-n', 'quota', `--from-literal=redis-url=${redis.url}`, `--from-literal=p2p-secret=${SECRET}`])
    await k(cp!, ['create', 'quota', 'no-pods', '-n', 'quota', '--hard=pods=0'])
    // what the quota controller (not run here) writes: the API server admits only against a quota with a status
    await k(cp!, ['patch', 'resourcequota', 'no-pods', '-n', 'quota', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { hard: { pods: '0' }, used: { pods: '0' } } })])
    await k(cp!, ['apply', '-n', 'quota', '-f', '-'], JSON.stringify({ ...examplePool, metadata: { name: 'quota-pool' }, spec: { ...examplePool.spec, replicas: 1, hostPort: 7374 } }))
    // a second operator in another namespace whose Lease a replica that vanished holds for an hour: no leader there
    // (PosRelayOperatorNoLeader for that namespace only)
    await k(cp!, ['create', 'namespace', 'standby'])
    const now = new Date().toISOString().replace('Z', '000Z') // MicroTime
    await k(cp!, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'pos-relay-operator', namespace: 'standby' }, spec: { holderIdentity: 'operator-gone', leaseDurationSeconds: 3600, acquireTime: now, renewTime: now } }))
    const standbyPort = await freePort()
    standbyOperator = cli('operator-standby', ['operator', '--namespace', 'standby', '--metrics-host', '127.0.0.1', '--metrics-port', String(standbyPort)],
      { ...cp!.env, POD_NAMESPACE: 'standby', POD_NAME: 'operator-b-0', LEADER_ELECT: 'true', RELAY_IMAGE: 'pos-relay:test', LOG_LEVEL: 'info' })
    await standbyOperator.waitForJson((o) => o.event === 'leader_observed' && o.leader === 'operator-gone')
    await prometheus.setTargets([...targets, { job: 'pos-relay-operator', target: `127.0.0.1:${standbyPort}`, labels: { namespace: 'pos-relay-standby', pod: 'pos-relay-operator-b-0' } }])
    // Redis away: discovery answers 503 and its store is down; the auth relay (rate limits through --redis)
    // answers a reservation's rate-limit check alone
    await redis.kill()
    for (let i = 0; i < 200; i++) await fetch(`${discoveryApi}/api/p2p/relays`).then(async (r) => { await r.arrayBuffer() }, () => {})
    const noTicket = await plainNode()
    await (noTicket as any).components.transportManager.listen([authRelayAddr.encapsulate('/p2p-circuit')]).catch(() => {})
    // the example pool's placed relay pod becomes Ready (the test plays the kubelet) while the registry's Redis is
    // away: Ready, not registered (PosRelayReadyNotRegistered)
    const placed = await poll('the example pool\'s relay pod', async () => (await kJson(cp!, ['get', 'pods', '-n', 'default', '-l', 'pos-relay.io/pool=relays'])).items[0]?.metadata.name as string | undefined)
    await kubelet(cp!, 'default', placed, true)
    // a limits file that sets a field which needs a restart: refused, the previous limits stay (read within 10 s)
    writeFileSync(limitsFile, JSON.stringify({ limits: { reservation_ttl_seconds: 60 } }))
    const refused = await relay.waitForJson((o) => o.event === 'limits_reload_failed')
    assert.match(refused.err, /reservation_ttl_seconds/, 'the log line names the field')
    const expected = ['PosRelayTicketKeysMissing', 'PosRelayReservationsRefusedAtCapacity', 'PosRelayDiscoveryErrors', 'PosRelayDiscoveryStoreDown', 'PosRelayRateLimitRedisDown',
      'PosRelayPoolBelowDesired', 'PosRelayLimitsReloadRefused', 'PosRelayMeteringBacklog', 'PosRelayReadyNotRegistered', 'PosRelayOperatorNoLeader', 'PosRelayOperatorReconcileErrors']
    const rules = parseYaml(readFileSync(join(CHART_DIR, 'files', 'alerts.yaml'), 'utf8')).groups.flatMap((g: any) => g.rules.map((r: any) => r.alert as string))
    assert.deepEqual([...rules].sort(), [...expected].sort(), 'every alert of the chart is provoked here')
    let fired = new Set<string>()
    await waitFor(async () => { fired = await firing(); return expected.every((a) => fired.has(a)) },
      { timeoutMs: 60_000, intervalMs: 1000, message: 'alerts firing' }).catch((err: Error) => {
      assert.fail(`${err.message}; expected ${expected.join(', ')}; firing: ${[...fired].join(', ')}`)
    }).finally(() => { clearInterval(trickling) })
    const labels = async (alertname: string): Promise<Record<string, string>> => (await query(`ALERTS{alertstate="firing", alertname="${alertname}"}`))[0].metric
    assert.equal((await labels('PosRelayReservationsRefusedAtCapacity')).pool, 'relays')
    assert.equal((await labels('PosRelayRateLimitRedisDown')).pod, 'relays-1')
    assert.equal((await labels('PosRelayTicketKeysMissing')).pod, 'relays-2')
    assert.deepEqual((await query('ALERTS{alertstate="firing", alertname="PosRelayLimitsReloadRefused"}')).map((r) => r.metric.pod), ['relays-0'], 'only the relay given the bad file')
    assert.equal((await labels('PosRelayDiscoveryErrors')).severity, 'critical')
    assert.equal((await labels('PosRelayMeteringBacklog')).pod, 'relays-1')
    assert.equal((await labels('PosRelayReadyNotRegistered')).namespace, 'pos-relay')
    assert.equal((await labels('PosRelayOperatorReconcileErrors')).namespace, 'pos-relay')
    // the operator that leads is not without a leader; the standby's namespace is
    assert.deepEqual((await query('ALERTS{alertstate="firing", alertname="PosRelayOperatorNoLeader"}')).map((r) => r.metric.namespace), ['pos-relay-standby'])
    assert.deepEqual(await query('count(ALERTS{peer!=""} or ALERTS{account!=""})'), [], 'no alert carries a peer or account')
    // each firing alert's dashboard_url opens a panel whose queries, with the variables the URL sets, return data
    const active = ((await (await fetch(`${prometheus.url}/api/v1/alerts`)).json()) as any).data.alerts.filter((a: any) => a.state === 'firing')
    for (const name of expected) {
      const a = active.find((x: any) => x.labels.alertname === name)
      const { panel, values } = await followDashboardUrl(a.annotations.dashboard_url, query)
      await assertAllData(panel, values, query, 15_000)
    }
  })
})
