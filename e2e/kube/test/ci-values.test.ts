/**
 * Every values file in charts/pos-relay/ci/ installs and then upgrades (`helm upgrade` with the
 * same file) against a real kube-apiserver, each as its own release in its own namespace. The test
 * plays the kubelet for the secrets hook Job (helmWithAccountsHook). One release owns the CRD (the
 * first); the others render it off (`crds.enabled=false`), as a second release in one cluster must.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parse } from 'yaml'
import { CHART_DIR, ensureKubeBinaries, startControlPlane, type ControlPlane } from '../harness.ts'
import { helmWithAccountsHook, k, kJson } from './helpers.ts'

const MONITORING_CRDS = new URL('./fixtures/monitoring-crds.yaml', import.meta.url).pathname
const CI_DIR = join(CHART_DIR, 'ci')
const FILES = readdirSync(CI_DIR).filter((f) => f.endsWith('-values.yaml')).sort()
/** the chart's alerts, the PrometheusRule's one source */
const ALERT_GROUPS: Array<{ name: string, rules: Array<{ alert: string }> }> = parse(readFileSync(join(CHART_DIR, 'files', 'alerts.yaml'), 'utf8')).groups

await ensureKubeBinaries()

describe('charts/pos-relay/ci/*.yaml: install and upgrade', { timeout: 400_000 }, () => {
  let cp: ControlPlane
  let tmp: string
  before(async () => {
    cp = await startControlPlane({ crds: [MONITORING_CRDS] })
    tmp = mkdtempSync(join(tmpdir(), 'pos-relay-ci-values-'))
  })
  after(async () => {
    await cp?.stop()
    if (tmp != null) rmSync(tmp, { recursive: true, force: true })
  })

  it('has the files the issue asks for', () => {
    for (const f of ['minimal-values.yaml', 'ha-values.yaml', 'openshift-restricted-values.yaml', 'monitoring-values.yaml', 'existing-secrets-values.yaml']) assert.ok(FILES.includes(f), f)
  })

  /** per file: what must hold in its namespace once installed (and again once upgraded) */
  const checks: Record<string, (ns: string, release: string) => Promise<void>> = {
    'minimal-values.yaml': async (ns, release) => {
      const dep = await kJson(cp, ['get', 'deployment', `${release}-operator`, '-n', ns])
      assert.equal(dep.spec.replicas, 1)
      assert.equal((await cp.kubectl(['get', 'secret', `${release}-ticket-keys`, '-n', ns])).code, 1, 'accounts off: no ticket keys')
      await k(cp, ['get', 'secret', `${release}-discovery`, '-n', ns])
    },
    'ha-values.yaml': async (ns, release) => {
      for (const c of ['operator', 'discovery']) {
        assert.equal((await kJson(cp, ['get', 'deployment', `${release}-${c}`, '-n', ns])).spec.replicas, 3)
        assert.equal((await kJson(cp, ['get', 'pdb', `${release}-${c}`, '-n', ns])).spec.minAvailable, 2)
      }
    },
    'openshift-restricted-values.yaml': async (ns) => {
      for (const d of (await kJson(cp, ['get', 'deployments', '-n', ns])).items) {
        assert.equal(d.spec.template.spec.securityContext.runAsUser, undefined, d.metadata.name)
      }
    },
    'monitoring-values.yaml': async (ns, release) => {
      await k(cp, ['get', 'podmonitor', `${release}-relays`, '-n', ns])
      await k(cp, ['get', 'servicemonitor', `${release}-discovery`, '-n', ns])
      assert.ok((await kJson(cp, ['get', 'networkpolicies', '-n', ns])).items.length > 0)
      // the PrometheusRule, stored by the API server (fixture CRD, strict fields), with every alert of files/alerts.yaml
      const rules = (await kJson(cp, ['get', 'prometheusrules', '-n', ns])).items
      assert.equal(rules.length, 1)
      assert.equal(rules[0].metadata.labels.release, 'kube-prometheus-stack')
      assert.deepEqual(rules[0].spec.groups, ALERT_GROUPS)
      assert.ok(ALERT_GROUPS.flatMap((g) => g.rules).some((r) => r.alert === 'PosRelayLimitsReloadRefused'))
      const dashboards = (await kJson(cp, ['get', 'configmaps', '-n', ns, '-l', 'grafana_dashboard=1'])).items
      assert.ok(dashboards.length >= 2, 'the dashboards ConfigMaps')
    },
    'existing-secrets-values.yaml': async (ns, release) => {
      // no hook ran and nothing was created besides the user's Secrets
      const names = ((await kJson(cp, ['get', 'secrets', '-n', ns])).items as any[]).map((s) => s.metadata.name).filter((n) => !n.startsWith('sh.helm.release.'))
      assert.deepEqual(names.sort(), ['my-admin', 'my-discovery', 'my-redis', 'my-ticket-keys'])
      const env = (await kJson(cp, ['get', 'deployment', `${release}-redis`, '-n', ns])).spec.template.spec.containers[0].env
      assert.equal(env[0].valueFrom.secretKeyRef.name, 'my-redis')
    }
  }

  let first = true
  for (const file of FILES) {
    it(file, async () => {
      const short = file.replace(/-values\.yaml$/, '').replace(/-restricted$/, '')
      const ns = `ci-${short}`
      const release = `pos-relay-${short}`
      await k(cp, ['create', 'namespace', ns])
      if (file === 'existing-secrets-values.yaml') {
        await k(cp, ['create', 'secret', 'generic', 'my-redis', '-n', ns, '--from-literal=password=p4ssw0rd'])
        await k(cp, ['create', 'secret', 'generic', 'my-discovery', '-n', ns, '--from-literal=p2p-secret=s3cret', `--from-literal=redis-url=redis://:p4ssw0rd@${release}-redis.${ns}.svc:6379`, `--from-literal=api-url=http://${release}-discovery.${ns}.svc:8080`])
        await k(cp, ['create', 'secret', 'generic', 'my-ticket-keys', '-n', ns, '--from-literal=ticket-keys.json=[]'])
        await k(cp, ['create', 'secret', 'generic', 'my-admin', '-n', ns, '--from-literal=admin-secret=adm1n'])
      }
      const extra = first ? [] : ['--set', 'crds.enabled=false']
      first = false
      for (const [verb, revision] of [['install', 1], ['upgrade', 2]] as const) {
        const { helm: r, hook } = await helmWithAccountsHook(cp, [verb, release, CHART_DIR, '-n', ns, '-f', join(CI_DIR, file), ...extra], { namespace: ns, release, tmp })
        if (hook != null) assert.equal(hook.code, 0, `${file} ${verb}: hook: ${hook.stderr}`)
        assert.equal(r.code, 0, `${file} ${verb}: ${r.stderr}`)
        const status = JSON.parse((await cp.helm(['status', release, '-n', ns, '-o', 'json'])).stdout)
        assert.equal(status.info.status, 'deployed', `${file} ${verb}`)
        assert.equal(status.version, revision)
        await checks[file]?.(ns, release)
      }
      await k(cp, ['get', 'crd', 'relaypools.pos-relay.io'])
    })
  }
})
