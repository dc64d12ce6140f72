/**
 * The Helm chart: lint, values.schema.json, generated files in sync, and every
 * manifest it renders (defaults and several value combinations, hooks and the
 * CRD included) accepted by a real kube-apiserver's server-side dry run with
 * strict field validation. Plus the security settings of every pod it makes.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import YAML from 'yaml'
import { CHART_DIR, CRD_FILE, ensureKubeBinaries, run, startControlPlane, type ControlPlane } from '../harness.ts'
import { ensureNamespace, helmOffline, renderChart, splitDocs } from './helpers.ts'

const MONITORING_CRDS = new URL('./fixtures/monitoring-crds.yaml', import.meta.url).pathname

/** Value combinations rendered and dry-run applied (besides the defaults). */
export const COMBINATIONS: Record<string, Record<string, unknown>> = {
  'monitoring, network policies, dashboards elsewhere': {
    monitoring: {
      podMonitor: { enabled: true, interval: '15s', additionalLabels: { release: 'kube-prometheus-stack' } },
      serviceMonitor: { enabled: true, additionalLabels: { release: 'kube-prometheus-stack' } },
      prometheusRule: { enabled: true, namespace: 'monitoring', additionalLabels: { release: 'kube-prometheus-stack' } }
    },
    networkPolicy: { enabled: true },
    dashboards: { namespace: 'monitoring', annotations: { grafana_folder: 'pos-relay' } }
  },
  'external Redis, one watched namespace, no leader election, LoadBalancer discovery': {
    fullnameOverride: 'relay-stack',
    imagePullSecrets: [{ name: 'regcred' }],
    image: { repository: 'registry.example.com/pos-relay', tag: '1.2.3', pullPolicy: 'Always' },
    redis: { enabled: false, externalUrl: 'redis://:secret@redis.example.com:6379/0' },
    operator: {
      // without leader election only one replica may run (the chart refuses more)
      replicas: 1,
      watchNamespace: 'relays',
      leaderElection: { enabled: false },
      relayImage: { repository: 'registry.example.com/relay', tag: '9.9.9', pullPolicy: 'Always' },
      extraEnv: [{ name: 'EXTRA', value: 'x' }],
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ops', effect: 'NoSchedule' }],
      priorityClassName: 'system-cluster-critical'
    },
    discovery: {
      replicas: 1,
      ttlSeconds: 60,
      service: { type: 'LoadBalancer', port: 80, nodePort: 30080, annotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb' } },
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }] }] } } }
    },
    cleanup: { removeFinalizersOnTimeout: true, timeoutSeconds: 60 },
    networkPolicy: { enabled: true }
  },
  'existing Secret and ServiceAccount, no RBAC, no hooks, no dashboards': {
    redis: { enabled: false },
    rbac: { create: false },
    operator: { serviceAccount: { create: false, name: 'my-operator' } },
    discovery: { existingSecret: 'my-discovery', podDisruptionBudget: { enabled: false } },
    cleanup: { enabled: false },
    dashboards: { enabled: false },
    accounts: { ticketKeys: { existingSecret: 'my-keys' }, adminSecret: { existingSecret: 'my-admin' }, redis: { existingSecret: 'my-accounts-redis', urlKey: 'url' } }
  },
  'accounts with tiers and rotation, only the admin and Redis password secrets given': {
    redis: { existingSecret: 'my-redis' },
    accounts: {
      ticketTtlSeconds: 3600,
      ticketKeys: { generation: 3, retireAfterSeconds: 86400 },
      adminSecret: { existingSecret: 'my-admin' },
      tiers: { basic: { max_reservations: 4, circuit_data_limit_bytes: 536870912, circuit_duration_seconds: 1800, monthly_bytes: 107374182400 }, big: { name: 'big', max_reservations: 64, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 } }
    }
  },
  'accounts off': { accounts: { enabled: false } }
}

let tmp: string
function valuesFile (values: Record<string, unknown>): string {
  tmp ??= mkdtempSync(join(tmpdir(), 'pos-relay-values-'))
  const file = join(tmp, `values-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify(values))
  return file
}

/** Pod templates of every workload in a List, with where they come from. */
function podSpecs (objects: any[]): Array<{ where: string, spec: any }> {
  const out: Array<{ where: string, spec: any }> = []
  for (const o of objects) {
    const spec = o.kind === 'Pod' ? o.spec : o.spec?.template?.spec
    if (spec != null) out.push({ where: `${o.kind}/${o.metadata.name}`, spec })
  }
  return out
}

// Outside any test so no test timeout applies: the first run builds the binaries (~12 min).
await ensureKubeBinaries()

describe('Helm chart pos-relay', { timeout: 600_000 }, () => {
  after(() => { if (tmp != null) rmSync(tmp, { recursive: true, force: true }) })

  it('helm lint --strict passes, with the defaults and every combination', async () => {
    const r = await helmOffline(['lint', '--strict', CHART_DIR])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/)
    for (const [name, values] of Object.entries(COMBINATIONS)) {
      const c = await helmOffline(['lint', '--strict', CHART_DIR, '-f', valuesFile(values)])
      assert.equal(c.code, 0, `${name}:\n${c.stdout}${c.stderr}`)
    }
  })

  it('templates the generated CRD (crds.enabled, crds.keep), with no crds/ folder Helm would never upgrade', async () => {
    const source = readFileSync(CRD_FILE, 'utf8')
    const copy = readFileSync(join(CHART_DIR, 'files', 'crds', 'relaypools.pos-relay.io.yaml'), 'utf8')
    assert.equal(copy, source, 'charts/pos-relay/files/crds/ differs from crds/: npm run generate:crd')
    assert.deepEqual(readdirSync(join(CHART_DIR, 'files', 'crds')), ['relaypools.pos-relay.io.yaml'])
    assert.ok(!readdirSync(CHART_DIR).includes('crds'))
    const parse = (yaml: string): any => YAML.parse(yaml)
    const rendered = parse(await renderChart(['--show-only', 'templates/crds.yaml']))
    const original = parse(source)
    // the same CRD as generated, plus the release's labels and the keep annotation
    assert.deepEqual(rendered.spec, original.spec)
    assert.equal(rendered.metadata.name, 'relaypools.pos-relay.io')
    assert.deepEqual(rendered.metadata.annotations, { 'helm.sh/resource-policy': 'keep' })
    assert.equal(rendered.metadata.labels['app.kubernetes.io/managed-by'], 'Helm')
    assert.equal(rendered.metadata.labels['app.kubernetes.io/part-of'], 'pos-relay')
    const noKeep = parse(await renderChart(['--show-only', 'templates/crds.yaml', '--set', 'crds.keep=false']))
    assert.equal(noKeep.metadata.annotations, undefined)
    const off = await helmOffline(['template', 'x', CHART_DIR, '--show-only', 'templates/crds.yaml', '--set', 'crds.enabled=false'])
    assert.notEqual(off.code, 0, 'nothing rendered')
    assert.match(off.stderr, /could not find template templates\/crds\.yaml/)
  })

  // the dashboards' generator has its drift test in e2e/test/dashboards.test.ts
  it('values.schema.json and the README\'s values reference match their generators', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pos-relay-gen-'))
    try {
      let r = await run(process.execPath, [join(CHART_DIR, 'hack', 'values-schema.mjs'), join(dir, 'schema.json')])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'), readFileSync(join(dir, 'schema.json'), 'utf8'), 'values.schema.json drifted: npx node charts/pos-relay/hack/values-schema.mjs')
      r = await run(process.execPath, [join(CHART_DIR, 'hack', 'values-doc.mjs'), join(dir, 'README.md')])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(readFileSync(join(CHART_DIR, 'README.md'), 'utf8'), readFileSync(join(dir, 'README.md'), 'utf8'), 'the values reference in charts/pos-relay/README.md drifted: npx node charts/pos-relay/hack/values-doc.mjs')
    } finally { rmSync(dir, { recursive: true, force: true }) }
  })

  it('values.schema.json rejects unknown keys, at the top and nested, and bad values', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--set', 'bogus=1'], /bogus/],
      [['--set', 'operator.replica=2'], /replica/],
      [['--set', 'monitoring.podMonitor.enable=true'], /enable/],
      [['--set', 'redis.image.tags=7'], /tags/],
      [['--set', 'discovery.service.type=Ingress'], /type/],
      [['--set', 'operator.metricsPort=80'], /metricsPort/],
      [['--set', 'redis.externalUrl=http://x'], /externalUrl/]
    ]
    for (const [args, mention] of cases) {
      const r = await helmOffline(['template', 'x', CHART_DIR, ...args])
      assert.notEqual(r.code, 0, `helm template ${args.join(' ')} succeeded`)
      assert.match(r.stderr, /values don't meet the specifications of the schema/)
      assert.match(r.stderr, mention)
    }
    const additional = await helmOffline(['template', 'x', CHART_DIR, '--set', 'bogus=1'])
    assert.match(additional.stderr, /additional properties 'bogus' not allowed|Additional property bogus is not allowed/)
  })

  it('RBAC: the Lease Role only with leader election, and only for the operator\'s Lease; no core events', async () => {
    const rbac = await renderChart(['--show-only', 'templates/operator-rbac.yaml'])
    assert.match(rbac, /resourceNames: \["pos-relay-operator"\]\n\s+verbs: \[get, update\]/)
    assert.doesNotMatch(rbac, /apiGroups: \[""\]\n\s+resources: \[events\]/, 'core events are not used')
    const without = splitDocs(await renderChart(['--show-only', 'templates/operator-rbac.yaml', '--set', 'operator.leaderElection.enabled=false', '--set', 'operator.replicas=1']))
    assert.ok(!without.some((d) => d.name.endsWith('-leader-election')), without.map((d) => `${d.kind}/${d.name}`).join(', '))
    const renamed = await renderChart(['--show-only', 'templates/operator-rbac.yaml', '--set', 'operator.leaderElection.leaseName=my-lease'])
    assert.match(renamed, /resourceNames: \["my-lease"\]/)
  })

  it('operator HA by default: 2 replicas with leader election, spread over nodes, a PodDisruptionBudget only when replicas > 1', async () => {
    const docs = splitDocs(await renderChart(['--show-only', 'templates/operator.yaml']))
    const deployment = docs.find((d) => d.kind === 'Deployment')!
    assert.match(deployment.text, /^ {2}replicas: 2$/m)
    assert.match(deployment.text, /name: POS_RELAY_OPERATOR_LEADER_ELECT\s+value: "true"/)
    for (const [env, value] of [['LEASE_DURATION', 15], ['RENEW_DEADLINE', 10], ['RETRY_PERIOD', 2]]) {
      assert.match(deployment.text, new RegExp(`name: POS_RELAY_OPERATOR_${env}_SECONDS\\s+value: "${value}"`))
    }
    assert.match(deployment.text, /podAntiAffinity:\s+preferredDuringSchedulingIgnoredDuringExecution:[\s\S]*?topologyKey: kubernetes.io\/hostname[\s\S]*?app.kubernetes.io\/component: operator/)
    const pdb = docs.find((d) => d.kind === 'PodDisruptionBudget')
    assert.ok(pdb != null, docs.map((d) => `${d.kind}/${d.name}`).join(', '))
    assert.equal(pdb.name, 'pos-relay-operator')
    assert.match(pdb.text, /minAvailable: 1\n/)
    assert.match(pdb.text, /matchLabels:[\s\S]*app.kubernetes.io\/component: operator/)
    const single = splitDocs(await renderChart(['--show-only', 'templates/operator.yaml', '--set', 'operator.replicas=1']))
    assert.ok(!single.some((d) => d.kind === 'PodDisruptionBudget'), 'no PDB for one replica: it would block every drain')
    const noPdb = splitDocs(await renderChart(['--show-only', 'templates/operator.yaml', '--set', 'operator.podDisruptionBudget.enabled=false']))
    assert.ok(!noPdb.some((d) => d.kind === 'PodDisruptionBudget'))
    const twoLeaders = await helmOffline(['template', 'x', CHART_DIR, '--set', 'operator.leaderElection.enabled=false'])
    assert.notEqual(twoLeaders.code, 0, 'two replicas without leader election must not render')
    assert.match(twoLeaders.stderr, /operator.replicas > 1 needs operator.leaderElection.enabled/)
    const badTimings = await helmOffline(['template', 'x', CHART_DIR, '--set', 'operator.leaderElection.renewDeadlineSeconds=20'])
    assert.notEqual(badTimings.code, 0)
    assert.match(badTimings.stderr, /leaseDurationSeconds must be greater than renewDeadlineSeconds/)
  })

  it('checksum annotations: a changed ConfigMap or Secret the chart renders or has the hook write rolls the pods that read it, and only those', async () => {
    /** pod template annotations of each Deployment, by name */
    const annotations = async (args: string[]): Promise<Record<string, Record<string, string>>> => {
      const out: Record<string, Record<string, string>> = {}
      for (const d of splitDocs(await renderChart(args)).filter((x) => x.kind === 'Deployment')) {
        const block = /^ {4}metadata:\n(?: {6}.*\n)*? {6}annotations:\n((?: {8}.*\n)+)/m.exec(d.text)?.[1] ?? ''
        out[d.name] = Object.fromEntries([...block.matchAll(/^ {8}([\w./-]+): (\S+)$/gm)].map((m) => [m[1]!, m[2]!]))
      }
      return out
    }
    const base = await annotations([])
    const sum = (name: string, key: string, of = base): string => of[name]?.[key] ?? ''
    assert.match(sum('pos-relay-discovery', 'checksum/secret'), /^[0-9a-f]{64}$/)
    assert.match(sum('pos-relay-discovery', 'checksum/config'), /^[0-9a-f]{64}$/)
    assert.match(sum('pos-relay-redis', 'checksum/config'), /^[0-9a-f]{64}$/)
    // tiers (the ConfigMap discovery mounts): discovery rolls, Redis and the operator do not
    const tiers = await annotations(['--set', 'accounts.tiers.basic.max_reservations=4', '--set', 'accounts.tiers.basic.circuit_data_limit_bytes=1', '--set', 'accounts.tiers.basic.circuit_duration_seconds=1', '--set', 'accounts.tiers.basic.monthly_bytes=1'])
    assert.notEqual(sum('pos-relay-discovery', 'checksum/config', tiers), sum('pos-relay-discovery', 'checksum/config'))
    assert.equal(sum('pos-relay-discovery', 'checksum/secret', tiers), sum('pos-relay-discovery', 'checksum/secret'))
    assert.deepEqual(tiers['pos-relay-redis'], base['pos-relay-redis'])
    assert.deepEqual(tiers['pos-relay-operator'], base['pos-relay-operator'])
    // what the hook writes into the discovery Secret (api-url, redis-url): discovery rolls, Redis does not
    const external = (url: string): string[] => ['--set', 'redis.enabled=false', '--set', `redis.externalUrl=${url}`]
    const externalA = await annotations(external('redis://a:6379'))
    for (const [args, changed] of [[['--set', 'discovery.service.port=9090'], await annotations(['--set', 'discovery.service.port=9090'])],
      [['--set', 'redis.existingSecret=my-redis'], await annotations(['--set', 'redis.existingSecret=my-redis'])], [external('redis://a:6379'), externalA]] as const) {
      assert.notEqual(sum('pos-relay-discovery', 'checksum/secret', changed), sum('pos-relay-discovery', 'checksum/secret'), args.join(' '))
      assert.equal(sum('pos-relay-discovery', 'checksum/config', changed), sum('pos-relay-discovery', 'checksum/config'), args.join(' '))
    }
    assert.notEqual(sum('pos-relay-discovery', 'checksum/secret', externalA), sum('pos-relay-discovery', 'checksum/secret', await annotations(external('redis://b:6379'))))
    // the operator reads no ConfigMap or Secret of the chart's (only its env): no checksum
    assert.ok(!Object.keys(base['pos-relay-operator'] ?? {}).some((key) => key.startsWith('checksum/')))
    // user pod annotations stay next to the checksums
    const user = await annotations(['--set', 'discovery.podAnnotations.team=relays'])
    assert.equal(user['pos-relay-discovery']!.team, 'relays')
    assert.equal(sum('pos-relay-discovery', 'checksum/secret', user), sum('pos-relay-discovery', 'checksum/secret'))
  })

  it('helm template gives byte-identical output twice (defaults and every combination) and renders no generated key material', async () => {
    for (const [name, values] of [['defaults', {}], ...Object.entries(COMBINATIONS)] as Array<[string, Record<string, unknown>]>) {
      const args = ['-f', valuesFile(values)]
      const a = await renderChart(args, { includeCrds: true })
      assert.equal(await renderChart(args, { includeCrds: true }), a, name)
      // the only Secret Helm renders is the hook's copy of a user-given redis.externalUrl
      const secrets = splitDocs(a).filter((d) => d.kind === 'Secret')
      assert.ok(secrets.every((d) => d.name.endsWith('-accounts-secrets') && /helm\.sh\/hook:/.test(d.text) && /^ {2}redis-url:/m.test(d.text)), `${name}: ${secrets.map((d) => d.name).join(', ')}`)
      assert.doesNotMatch(a, /p2p-secret:|requirepass [^"]|password:|ticket-keys\.json:|admin-secret:/, name)
    }
  })

  it('helm test hook: pos-relay check of discovery and one relay; --require-relays only with tests.requireRelays', async () => {
    const hook = async (set: string[]): Promise<string> => (await renderChart([...set, '--show-only', 'templates/tests/discovery-test.yaml']))
    const plain = await hook([])
    assert.match(plain, /helm\.sh\/hook: test/)
    assert.match(plain, /args:\n\s+- check\n\s+- http:\/\/pos-relay-discovery\.pos-relay\.svc:8080\n\s+- --relays\n\s+- "1"\n\s+securityContext:/)
    assert.match(await hook(['--set', 'tests.requireRelays=true']), /- --relays\n\s+- "1"\n\s+- --require-relays\n\s+securityContext:/)
  })

  it('refuses to render without a registry: redis disabled and neither an external URL nor an existing Secret', async () => {
    const r = await helmOffline(['template', 'x', CHART_DIR, '--set', 'redis.enabled=false'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /redis\/externalUrl/)
    assert.match(r.stderr, /discovery\/existingSecret/)
  })

  it('renders the pieces the issue asks for (defaults)', async () => {
    const docs = splitDocs(await renderChart())
    const kinds = docs.map((d) => `${d.kind}/${d.name}`)
    for (const want of [
      'Deployment/pos-relay-operator', 'Service/pos-relay-operator-metrics', 'PodDisruptionBudget/pos-relay-operator', 'ServiceAccount/pos-relay-operator',
      'ClusterRole/pos-relay-operator', 'ClusterRoleBinding/pos-relay-operator', 'ClusterRole/pos-relay-operator-nodes',
      'Role/pos-relay-operator-leader-election', 'RoleBinding/pos-relay-operator-leader-election',
      'Deployment/pos-relay-discovery', 'Service/pos-relay-discovery', 'PodDisruptionBudget/pos-relay-discovery',
      'Deployment/pos-relay-redis', 'Service/pos-relay-redis', 'ConfigMap/pos-relay-redis',
      'ConfigMap/pos-relay-dashboard-fleet-overview', 'ConfigMap/pos-relay-dashboard-operator',
      'Job/pos-relay-cleanup', 'ServiceAccount/pos-relay-cleanup', 'ClusterRole/pos-relay-cleanup', 'ConfigMap/pos-relay-cleanup',
      'Job/pos-relay-accounts-secrets', 'ServiceAccount/pos-relay-accounts-secrets', 'Role/pos-relay-accounts-secrets', 'RoleBinding/pos-relay-accounts-secrets'
    ]) assert.ok(kinds.includes(want), `missing ${want} in ${kinds.join(', ')}`)
    assert.ok(!kinds.some((k) => k.startsWith('PodMonitor') || k.startsWith('ServiceMonitor') || k.startsWith('NetworkPolicy')), 'monitors and policies are opt-in')
    const job = docs.find((d) => d.kind === 'Job' && d.name === 'pos-relay-cleanup')!
    assert.match(job.text, /helm\.sh\/hook: pre-delete/)
    assert.match(docs.find((d) => d.kind === 'Job' && d.name === 'pos-relay-accounts-secrets')!.text, /helm\.sh\/hook: pre-install,pre-upgrade/)
    // Helm renders no Secret at all (the hook creates them in the cluster)
    assert.ok(!kinds.some((k) => k.startsWith('Secret/')), kinds.join(', '))
    const hookArgs = docs.find((d) => d.kind === 'Job' && d.name === 'pos-relay-accounts-secrets')!.text
    for (const arg of ['--discovery-secret=pos-relay-discovery', '--api-url=http://pos-relay-discovery.pos-relay.svc:8080', '--redis-secret=pos-relay-redis', '--redis-host=pos-relay-redis.pos-relay.svc:6379', '--ticket-keys-secret=pos-relay-ticket-keys', '--admin-secret=pos-relay-admin']) {
      assert.ok(hookArgs.includes(`- ${arg}\n`), arg)
    }
    const operator = docs.find((d) => d.name === 'pos-relay-operator' && d.kind === 'Deployment')!
    assert.match(operator.text, /args: \[operator\]/)
    for (const env of ['POS_RELAY_OPERATOR_NAMESPACE', 'POD_NAMESPACE', 'POS_RELAY_OPERATOR_LEADER_ELECT', 'POS_RELAY_OPERATOR_LEASE_NAME', 'POS_RELAY_OPERATOR_METRICS_PORT', 'POS_RELAY_OPERATOR_RELAY_IMAGE']) assert.match(operator.text, new RegExp(`name: ${env}\\b`))
    const discovery = docs.find((d) => d.name === 'pos-relay-discovery' && d.kind === 'Deployment')!
    assert.match(discovery.text, /args:\n\s+- discovery\n/)
    assert.match(discovery.text, /- --ticket-keys-file=\/etc\/pos-relay\/ticket-keys\/ticket-keys\.json\n\s+- --admin-secret-file=\/etc\/pos-relay\/admin\/admin-secret\n/)
    assert.match(discovery.text, /name: POS_RELAY_DISCOVERY_REDIS_URL\s+valueFrom:\s+secretKeyRef:/)
    assert.match(docs.find((d) => d.name === 'pos-relay-redis' && d.kind === 'Deployment')!.text, /image: "redis:7-alpine"/)
  })

  describe('every rendered manifest is accepted by the real API server (server-side dry run)', { timeout: 300_000 }, () => {
    let cp: ControlPlane
    before(async () => {
      cp = await startControlPlane({ crds: [CRD_FILE, MONITORING_CRDS] })
      for (const ns of ['pos-relay', 'relays', 'monitoring']) await ensureNamespace(cp, ns)
    })
    after(async () => { await cp?.stop() })

    const check = async (name: string, values: Record<string, unknown>): Promise<any[]> => {
      const rendered = await renderChart(['-f', valuesFile(values)], { includeCrds: true })
      const docs = splitDocs(rendered)
      const r = await cp.kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-', '-o', 'json'], rendered)
      assert.equal(r.code, 0, `${name}: the API server rejected a manifest:\n${r.stderr}`)
      const parsed = JSON.parse(r.stdout)
      const objects: any[] = parsed.kind === 'List' ? parsed.items : [parsed]
      assert.equal(objects.length, docs.length, `${name}: ${docs.length} documents rendered, ${objects.length} accepted`)
      return objects
    }

    it('strict field validation is on: a misspelt field in a rendered manifest is rejected', async () => {
      const rendered = await renderChart()
      const broken = rendered.replace(/^(\s+)terminationGracePeriodSeconds: 30$/m, '$1terminationGracePeriodSecs: 30')
      assert.notEqual(broken, rendered)
      const r = await cp.kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], broken)
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, /unknown field "spec\.template\.spec\.terminationGracePeriodSecs"/)
    })

    it('defaults', async () => {
      const objects = await check('defaults', {})
      const dashboards = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1')
      assert.equal(dashboards.length, 2)
      for (const cm of dashboards) {
        for (const [key, json] of Object.entries(cm.data as Record<string, string>)) {
          const d = JSON.parse(json)
          assert.ok(d.uid.startsWith('pos-relay-') && d.panels.length > 5, key)
        }
      }
    })

    for (const [name, values] of Object.entries(COMBINATIONS)) {
      it(name, async () => { await check(name, values) })
    }

    it('every pod runs non-root, read-only, without capabilities, with RuntimeDefault seccomp', async () => {
      const all: any[] = []
      all.push(...await check('defaults', {}))
      for (const [name, values] of Object.entries(COMBINATIONS)) all.push(...await check(name, values))
      const specs = podSpecs(all)
      assert.ok(specs.length >= 4)
      for (const { where, spec } of specs) {
        assert.equal(spec.securityContext?.runAsNonRoot, true, where)
        assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault', where)
        assert.ok(spec.securityContext?.runAsUser > 0, where)
        for (const c of spec.containers) {
          const sc = c.securityContext ?? {}
          assert.equal(sc.readOnlyRootFilesystem, true, `${where} ${c.name}`)
          assert.equal(sc.allowPrivilegeEscalation, false, `${where} ${c.name}`)
          assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where} ${c.name}`)
          assert.equal(sc.seccompProfile?.type, 'RuntimeDefault', `${where} ${c.name}`)
          assert.ok(c.resources?.limits?.memory != null, `${where} ${c.name} has a memory limit`)
          assert.ok(spec.volumes?.some((v: any) => v.emptyDir != null && c.volumeMounts?.some((m: any) => m.name === v.name && m.mountPath === '/tmp')), `${where} ${c.name} has a writable /tmp`)
        }
      }
    })

    it('ci/openshift-restricted-values.yaml: no fixed uid, gid or fsGroup in any pod, the operator\'s relay pods included; the rest stays restrictive', async () => {
      const rendered = await renderChart(['-f', join(CHART_DIR, 'ci', 'openshift-restricted-values.yaml')], { includeCrds: true })
      const r = await cp.kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-', '-o', 'json'], rendered)
      assert.equal(r.code, 0, r.stderr)
      const parsed = JSON.parse(r.stdout)
      const specs = podSpecs(parsed.kind === 'List' ? parsed.items : [parsed])
      assert.ok(specs.length >= 5, `${specs.length} pod specs`)
      for (const { where, spec } of specs) {
        for (const key of ['runAsUser', 'runAsGroup', 'fsGroup']) assert.equal(spec.securityContext?.[key], undefined, `${where}: ${key}`)
        assert.equal(spec.securityContext?.runAsNonRoot, true, where)
        assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault', where)
        for (const c of spec.containers) assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where} ${c.name}`)
      }
      // the relay pods: the operator gets the map as JSON and uses it as is (operator/test/security-context.test.ts)
      const operator = (parsed.items as any[]).find((o) => o.kind === 'Deployment' && o.metadata.name.endsWith('-operator'))
      const env = Object.fromEntries(operator.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]))
      assert.deepEqual(JSON.parse(env.POS_RELAY_OPERATOR_RELAY_POD_SECURITY_CONTEXT), { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } })
      assert.equal(JSON.parse(env.POS_RELAY_OPERATOR_RELAY_CONTAINER_SECURITY_CONTEXT).readOnlyRootFilesystem, true)
    })

    it('RBAC is namespaced when the operator watches one namespace', async () => {
      const objects = await check('namespaced', COMBINATIONS['external Redis, one watched namespace, no leader election, LoadBalancer discovery']!)
      const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === 'relay-stack-operator')
      assert.equal(role?.metadata.namespace, 'relays')
      assert.ok(!objects.some((o) => o.kind === 'ClusterRole' && o.metadata.name === 'relay-stack-operator'))
      // nodes stay readable cluster-wide, read-only
      const nodes = objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'relay-stack-operator-nodes')
      assert.deepEqual(nodes.rules, [{ apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] }])
      const pm = await check('monitoring', COMBINATIONS['monitoring, network policies, dashboards elsewhere']!)
      const podMonitor = pm.find((o) => o.kind === 'PodMonitor')
      assert.equal(podMonitor.metadata.labels.release, 'kube-prometheus-stack')
      assert.deepEqual(podMonitor.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'pos-relay', 'app.kubernetes.io/component': 'relay' })
      assert.equal(podMonitor.spec.podMetricsEndpoints[0].port, 'metrics')
      // with the PodMonitor the operator puts no prometheus.io annotations on relay pods (scraped once, not twice)
      const scrapeEnv = (objs: any[]): string => objs.find((o) => o.kind === 'Deployment' && o.metadata.name.endsWith('-operator'))
        .spec.template.spec.containers[0].env.find((e: any) => e.name === 'POS_RELAY_OPERATOR_RELAY_SCRAPE_ANNOTATIONS').value
      assert.equal(scrapeEnv(pm), 'false')
      assert.equal(scrapeEnv(objects), 'true')
      assert.ok(pm.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1').every((o) => o.metadata.namespace === 'monitoring'))
      // the alerts, accepted under the PrometheusRule CRD's strict fields, in the namespace asked for
      const rule = pm.find((o) => o.kind === 'PrometheusRule')
      assert.equal(rule.metadata.namespace, 'monitoring')
      assert.ok(rule.spec.groups.flatMap((g: any) => g.rules).some((r: any) => r.alert === 'PosRelayLimitsReloadRefused'))
    })
  })
})
