/**
 * Every values file in charts/pos-relay/ci/ on the kind cluster: installed,
 * `helm test`ed, upgraded (`helm upgrade` with the same file), tested again
 * and uninstalled, one release at a time in its own namespace, with real pods.
 * The hermetic kube suite (e2e/kube/test/ci-values.test.ts) installs the same
 * files against an API server without nodes, where no pod runs: a `helm
 * test` needs this cluster.
 *
 * Each release gets a RelayPool of one relay (CI_POOL) that announces its
 * node's InternalIP with the hostPort, an address pods can dial (the main
 * release's relays announce loopback addresses of this machine, which no pod
 * reaches), so `helm test`, with tests.requireRelays, checks a relay for real:
 * first it must fail while no relay is listed, then, with the pool Ready,
 * print the relay check's line (peer id verified, hop protocol offered).
 *
 * The monitoring file is installed against the Prometheus Operator's real
 * CRDs (PodMonitor, ServiceMonitor, PrometheusRule), taken from its Go module
 * (the Go module proxy is reachable where no container registry is).
 */
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateTicketKey } from '@pos-relay/accounts'
import { parse } from 'yaml'
import { CHART_DIR, run } from '../kube/harness.ts'
import { deletePool, EXAMPLE_FILE, waitForPoolReady, type Kubectl } from '../shared/relaypool.ts'

/** the Prometheus Operator release whose CRDs the monitoring values file is installed against */
export const PROMETHEUS_OPERATOR_MODULE = 'github.com/prometheus-operator/prometheus-operator@v0.85.0'
const MONITORING_CRDS = ['podmonitors', 'servicemonitors', 'prometheusrules']

export const CI_DIR = join(CHART_DIR, 'ci')
export const CI_FILES = readdirSync(CI_DIR).filter((f) => f.endsWith('-values.yaml')).sort()

export interface CiCluster {
  kubectl: Kubectl
  helm: (args: string[]) => Promise<string>
  dir: string
}

/** the CRD files of PROMETHEUS_OPERATOR_MODULE, from the Go module cache (downloaded once) */
export async function prometheusOperatorCrds (): Promise<string[]> {
  // the Go tarball's default place, for a shell without it on PATH
  const go = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go'
  const r = await run(go, ['mod', 'download', '-json', PROMETHEUS_OPERATOR_MODULE], { env: { GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' }, timeoutMs: 300_000 })
  assert.equal(r.code, 0, `go mod download ${PROMETHEUS_OPERATOR_MODULE}: ${r.stderr}${r.stdout}`)
  const dir = JSON.parse(r.stdout).Dir as string
  return MONITORING_CRDS.map((c) => join(dir, 'example', 'prometheus-operator-crd', `monitoring.coreos.com_${c}.yaml`))
}

/**
 * What OpenShift's restricted-v2 SCC adds at admission to pods that leave
 * them out (openshift-restricted-values.yaml does): a uid and an fsGroup from
 * the namespace's range. kind has no SCC; without an fsGroup the Secret
 * files (mode 0440, root's group) are unreadable for a non-root uid, which is
 * not what happens on OpenShift. The uid is not the images' 10001, so the
 * images are shown to run under an arbitrary one.
 */
const OPENSHIFT_UID = 1000660000
export const OPENSHIFT_SCC_VALUES: Record<string, unknown> = Object.fromEntries(['operator', 'discovery', 'relayPods', 'redis', 'cleanup'].map((c) => [c, { podSecurityContext: { runAsUser: OPENSHIFT_UID, fsGroup: OPENSHIFT_UID } }]))
OPENSHIFT_SCC_VALUES.accounts = { hook: { podSecurityContext: { runAsUser: OPENSHIFT_UID, fsGroup: OPENSHIFT_UID } } }

/** the Secrets existing-secrets-values.yaml names, created the way its header tells a user to */
async function createUserSecrets (kubectl: Kubectl, ns: string, release: string): Promise<void> {
  const key = await generateTicketKey()
  const secrets: Array<[string, Record<string, string>]> = [
    ['my-redis', { password: 'p4ssw0rd' }],
    ['my-discovery', { 'p2p-secret': 's3cret-of-the-ci-values-test', 'redis-url': `redis://:p4ssw0rd@${release}-redis.${ns}.svc:6379`, 'api-url': `http://${release}-discovery.${ns}.svc:8080` }],
    ['my-ticket-keys', { 'ticket-keys.json': JSON.stringify([key]) }],
    ['my-admin', { 'admin-secret': 'adm1n-of-the-ci-values-test' }]
  ]
  for (const [name, data] of secrets) {
    const manifest = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, type: 'Opaque', stringData: data }
    const r = await kubectl(['apply', '-f', '-'], JSON.stringify(manifest))
    assert.equal(r.code, 0, `secret ${name}: ${r.stderr}`)
  }
}

/** Circuit Relay v2's hop protocol, which `pos-relay check` requires a relay to offer (packages/cli/src/commands/check.ts) */
const HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

/** the RelayPool each ci/ release runs while it is tested */
export const CI_POOL = 'ci-relays'

/**
 * examples/relaypool.yaml with one relay on the hostPort the kind config
 * leaves free of the main release by then (7373), registered through the
 * release's discovery Secret (`discoverySecret`), announcing its node's
 * InternalIP: no nodeAnnotation, so the workers' pos-relay.io/public-address
 * annotations (the loopback addresses the main release's relays announce)
 * are ignored. No drain, so deleting it is quick.
 */
export function ciPoolManifest (discoverySecret: string): Record<string, any> {
  const pool = parse(readFileSync(EXAMPLE_FILE, 'utf8'))
  pool.metadata.name = CI_POOL
  pool.spec.replicas = 1
  pool.spec.drainSeconds = 0
  pool.spec.discovery.redisUrlSecretRef.name = discoverySecret
  pool.spec.discovery.p2pSecretRef.name = discoverySecret
  pool.spec.publicAddress = { nodeAddressTypes: ['InternalIP'] }
  return pool
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

/** the line `pos-relay check` prints once it dialed `relay` (a pool status entry) at its listed address */
export function relayCheckedLine (ns: string, relay: { slot: number | string, multiaddr: string }): RegExp {
  return new RegExp(`^relay ${escape(`${ns}:${CI_POOL}:${relay.slot}`)} at ${escape(relay.multiaddr)}: peer id verified, offers ${escape(HOP_PROTOCOL)} \\(\\d+ ms\\)$`, 'm')
}

/** the pool's relay announces the InternalIP of the node it runs on, with the pool's hostPort */
async function assertInternalAddress (kubectl: Kubectl, pool: any): Promise<void> {
  const relay = pool.status.relays[0]
  const node = JSON.parse((await kubectl(['get', 'node', relay.node, '-o', 'json'])).stdout)
  const internal = node.status.addresses.find((a: any) => a.type === 'InternalIP')?.address
  assert.equal(relay.multiaddr, `/ip4/${internal}/tcp/${pool.spec.hostPort}/p2p/${relay.peerId}`, `${relay.node}'s InternalIP is ${internal}`)
}

/**
 * Installs, tests, upgrades, tests and uninstalls `chart` with one ci/ file.
 * `base` carries the locally built images (no registry); the ci/ file comes
 * after it and wins. The RelayPool CRD exists already (kept from the main
 * release), so the release does not render it (crds.enabled=false), as a
 * second release in one cluster must not. Returns what `helm test` printed.
 */
export async function installCiValuesFile (cluster: CiCluster, chart: string, base: Record<string, unknown>, file: string): Promise<string[]> {
  const short = file.replace(/-values\.yaml$/, '').replace(/-restricted$/, '')
  const ns = `ci-${short}`
  // a name with the chart's in it is the fullname too (pos-relay.fullname), which the Secrets below point at
  const release = `pos-relay-${short}`
  const baseFile = join(cluster.dir, `ci-base-${short}.json`)
  writeFileSync(baseFile, JSON.stringify(base)) // JSON is YAML
  const created = await cluster.kubectl(['create', 'namespace', ns])
  assert.equal(created.code, 0, created.stderr)
  if (file === 'existing-secrets-values.yaml') await createUserSecrets(cluster.kubectl, ns, release)
  const files = ['-f', baseFile, '-f', join(CI_DIR, file)]
  if (file === 'openshift-restricted-values.yaml') {
    const scc = join(cluster.dir, 'openshift-scc.json')
    writeFileSync(scc, JSON.stringify(OPENSHIFT_SCC_VALUES))
    files.push('-f', scc)
  }
  const tests: string[] = []
  for (const [verb, revision] of [['install', 1], ['upgrade', 2]] as const) {
    await cluster.helm([verb, release, chart, '-n', ns, ...files, '--set', 'crds.enabled=false', '--set', 'tests.requireRelays=true', '--wait', '--timeout', '3m'])
    const status = JSON.parse(await cluster.helm(['status', release, '-n', ns, '-o', 'json']))
    assert.equal(status.info.status, 'deployed', `${file} ${verb}`)
    assert.equal(status.version, revision, `${file} ${verb}`)
    if (verb === 'install') {
      // no pool yet: with tests.requireRelays the hook must fail, saying why
      const failed = await cluster.helm(['test', release, '-n', ns, '--timeout', '3m']).then(() => 'passed', (err: Error) => err.message)
      const log = await cluster.kubectl(['logs', `${release}-test-discovery`, '-n', ns])
      assert.match(log.stdout + log.stderr, /discovery lists no relay \(--require-relays\)/, `${file}: helm test without a relay: ${failed}\n${log.stdout}${log.stderr}`)
      const applied = await cluster.kubectl(['apply', '-n', ns, '-f', '-'], JSON.stringify(ciPoolManifest(file === 'existing-secrets-values.yaml' ? 'my-discovery' : `${release}-discovery`)))
      assert.equal(applied.code, 0, applied.stderr)
    }
    const pool = await waitForPoolReady(cluster.kubectl, ns, CI_POOL, 1, 180_000)
    await assertInternalAddress(cluster.kubectl, pool)
    const out = await cluster.helm(['test', release, '-n', ns, '--logs', '--timeout', '3m'])
    assert.match(out, /Phase:\s+Succeeded/, `${file} ${verb}: helm test\n${out}`)
    assert.match(out, /GET \/api\/p2p\/relays: 200 \(1 relays listed\)/, `${file} ${verb}: helm test\n${out}`)
    assert.match(out, relayCheckedLine(ns, pool.status.relays[0]), `${file} ${verb}: helm test did not check the relay\n${out}`)
    tests.push(out)
  }
  // before the uninstall: minimal-values.yaml has no cleanup hook, and the pool's finalizer needs the operator
  await deletePool(cluster.kubectl, ns, CI_POOL, 120_000)
  await cluster.helm(['uninstall', release, '-n', ns, '--wait', '--timeout', '5m'])
  const deleted = await cluster.kubectl(['delete', 'namespace', ns, '--wait=true', '--timeout=180s'])
  assert.equal(deleted.code, 0, deleted.stderr)
  return tests
}
