/**
 * The chart's Grafana dashboards (charts/pos-relay/dashboards/*.json) are what
 * their generator (charts/pos-relay/hack/dashboards.ts, Grafana's Foundation
 * SDK) writes, keep their file names and UIDs, scope every query, and the
 * alerts' dashboard_url annotations open panels that exist and show what the
 * alert watches. That every query returns data against a real Prometheus is
 * e2e/kube/test/dashboards.test.ts.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { dashboards, render } from '../../charts/pos-relay/hack/dashboards.ts'

const CHART = fileURLToPath(new URL('../../charts/pos-relay/', import.meta.url))
const committed = (file: string): any => JSON.parse(readFileSync(join(CHART, 'dashboards', file), 'utf8'))
const panelsOf = (d: any): any[] => d.panels.flatMap((p: any) => [p, ...(p.panels ?? [])])
const alerts: Array<{ alert: string, annotations: Record<string, string> }> = parse(readFileSync(join(CHART, 'files', 'alerts.yaml'), 'utf8')).groups.flatMap((g: any) => g.rules)
/** metric families whose names other software exports too, or ours */
const METRIC = /\b(pos_relay_\w+|leader_election_\w+|controller_runtime_\w+|workqueue_\w+|process_\w+)(\{[^}]*\})?/g

describe('Grafana dashboards (generated)', () => {
  it('the committed JSON is what the generator writes (npx node charts/pos-relay/hack/dashboards.ts)', () => {
    const generated = dashboards()
    assert.deepEqual(Object.keys(generated).sort(), ['fleet-overview.json', 'operator.json'], 'file names are what users provisioned')
    for (const [file, d] of Object.entries(generated)) {
      assert.equal(readFileSync(join(CHART, 'dashboards', file), 'utf8'), render(d), `${file} drifted: npx node charts/pos-relay/hack/dashboards.ts`)
    }
    assert.equal(committed('fleet-overview.json').uid, 'pos-relay-fleet')
    assert.equal(committed('operator.json').uid, 'pos-relay-operator')
  })

  it('every metric in every query is scoped by the dashboard\'s namespace/pod or job variables', () => {
    const scopes: Record<string, RegExp[]> = {
      'fleet-overview.json': [/namespace=~"\$namespace"/, /job=~"\$discovery"/],
      'operator.json': [/namespace=~"\$namespace", job=~"\$job"/]
    }
    for (const file of Object.keys(scopes)) {
      const d = committed(file)
      let n = 0
      for (const p of panelsOf(d)) {
        for (const t of p.targets ?? []) {
          for (const m of (t.expr as string).matchAll(METRIC)) {
            n++
            assert.ok(m[2] != null && scopes[file]!.some((re) => re.test(m[2]!)), `${file} / ${p.title as string}: ${m[1]!} is not scoped in ${t.expr as string}`)
          }
        }
      }
      assert.ok(n > 10, `${file}: only ${n} metrics seen`)
    }
  })

  it('variables: namespace, pool and pod on the fleet; the operator\'s job never expands to other jobs', () => {
    const vars = (file: string): Record<string, any> => Object.fromEntries(committed(file).templating.list.map((v: any) => [v.name, v]))
    const fleet = vars('fleet-overview.json')
    const operator = vars('operator.json')
    assert.deepEqual(Object.keys(fleet), ['datasource', 'namespace', 'pool', 'pod', 'discovery'])
    assert.deepEqual(Object.keys(operator), ['datasource', 'namespace', 'job', 'pod'])
    // All, without allValue: the regex of the jobs that export the operator's own gauge (or discovery's), nothing else
    assert.equal(operator.job.allValue, undefined)
    assert.match(operator.job.query.query, /^label_values\(pos_relay_operator_relays\{/)
    assert.equal(fleet.discovery.allValue, undefined)
    assert.match(fleet.pod.query.query, /^label_values\(pos_relay_draining\{namespace=~"\$namespace", pool=~"\$pool"\}, pod\)$/)
  })

  it('the fleet has a table of relays with their state', () => {
    const t = panelsOf(committed('fleet-overview.json')).find((p) => p.type === 'table')
    assert.equal(t.title, 'Relays')
    const renamed = t.transformations.find((x: any) => x.id === 'organize').options.renameByName
    assert.deepEqual(Object.values(renamed), ['Ready', 'Registered', 'Draining', 'Reservations', 'Circuits', 'Connections', 'Relayed'])
    assert.deepEqual(t.targets.map((x: any) => [x.refId, x.format, x.instant]), Object.keys(renamed).map((k) => [k.slice(-1), 'table', true]))
  })

  it('every alert\'s dashboard_url opens a panel that exists and links back to the alert\'s runbook', () => {
    const byUid: Record<string, any> = Object.fromEntries(['fleet-overview.json', 'operator.json'].map((f) => [committed(f).uid, committed(f)]))
    for (const a of alerts) {
      const url = a.annotations.dashboard_url
      assert.ok(url != null, `${a.alert}: no dashboard_url`)
      const m = /^\/d\/([\w-]+)\/([\w-]+)\?(.*)$/.exec(url)
      assert.ok(m != null, `${a.alert}: ${url}`)
      const d = byUid[m[1]!]
      assert.ok(d != null, `${a.alert}: no dashboard ${m[1]!}`)
      assert.equal(m[2], d.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, ''), `${a.alert}: slug`)
      const params = new URLSearchParams(m[3])
      const panel = panelsOf(d).find((p) => String(p.id) === params.get('viewPanel'))
      assert.ok(panel != null, `${a.alert}: ${d.title as string} has no panel ${params.get('viewPanel')}`)
      assert.ok((panel.links ?? []).some((l: any) => (l.url as string).endsWith(`#${a.alert.toLowerCase()}`)), `${a.alert}: panel "${panel.title as string}" has no link to its runbook`)
      const names = new Set(d.templating.list.map((v: any) => v.name))
      for (const k of params.keys()) if (k.startsWith('var-')) assert.ok(names.has(k.slice(4)), `${a.alert}: ${d.title as string} has no variable ${k.slice(4)}`)
    }
    // and every runbook link of a panel names an alert that exists
    const names = new Set(alerts.map((a) => a.alert.toLowerCase()))
    for (const d of Object.values(byUid)) {
      for (const p of panelsOf(d)) for (const l of p.links ?? []) assert.ok(names.has((l.url as string).split('#')[1]!), `${d.title as string} / ${p.title as string}: ${l.url as string}`)
    }
  })
})
