/**
 * The chart's alerts (charts/pos-relay/files/alerts.yaml): promtool checks the
 * rules and runs their unit tests (charts/pos-relay/tests/alerts.test.yaml),
 * every alert carries what on-call needs (severity, summary, description, a
 * runbook section in docs/alerts.md) and is unit-tested, and the chart's
 * PrometheusRule renders exactly these rules.
 *
 * promtool comes with Debian's `prometheus` package (.ci/run installs it):
 * without it the promtool tests are skipped outside CI and fail under CI=true.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { parse, parseAllDocuments } from 'yaml'
import { CHART_DIR, run } from '../harness.ts'
import { helmOffline } from './helpers.ts'

export const RULES_FILE = join(CHART_DIR, 'files', 'alerts.yaml')
const RULE_TESTS_FILE = join(CHART_DIR, 'tests', 'alerts.test.yaml')
const RUNBOOK = new URL('../../../docs/alerts.md', import.meta.url).pathname

interface Rule { alert: string, expr: string, for?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
interface Group { name: string, rules: Rule[] }
const groups: Group[] = parse(readFileSync(RULES_FILE, 'utf8')).groups
const alerts = groups.flatMap((g) => g.rules)

function promtool (): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || undefined
  } catch { return undefined }
}
const PROMTOOL = promtool()
if (PROMTOOL == null && process.env.CI === 'true') throw new Error('promtool is missing under CI: .ci/run installs Debian\'s prometheus package')
const skipPromtool = PROMTOOL == null ? 'promtool is not installed (apt-get install prometheus): promtool tests skipped' : false

/** GitHub's anchor of a markdown heading */
const anchor = (heading: string): string => heading.trim().toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')

describe('alerts (PrometheusRule)', { timeout: 300_000 }, () => {
  it('promtool check rules accepts the rule file', { skip: skipPromtool }, async () => {
    const r = await run(PROMTOOL!, ['check', 'rules', RULES_FILE])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`))
  })

  it('promtool test rules passes the unit tests', { skip: skipPromtool }, async () => {
    const r = await run(PROMTOOL!, ['test', 'rules', RULE_TESTS_FILE])
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /SUCCESS/)
  })

  it('every alert has a severity, summary, description and runbook section, and a unit test that fires it', () => {
    const runbook = readFileSync(RUNBOOK, 'utf8')
    const anchors = new Set([...runbook.matchAll(/^#{2,4} (.+)$/gm)].map((m) => anchor(m[1] ?? '')))
    const tests: Array<{ alert_rule_test?: Array<{ alertname: string, exp_alerts: unknown[] }> }> = parse(readFileSync(RULE_TESTS_FILE, 'utf8')).tests
    const fired = new Set(tests.flatMap((t) => t.alert_rule_test ?? []).filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname))
    assert.ok(alerts.length >= 9)
    assert.equal(new Set(alerts.map((a) => a.alert)).size, alerts.length, 'alert names are unique')
    for (const a of alerts) {
      assert.match(a.labels?.severity ?? '', /^(warning|critical)$/, `${a.alert}: severity`)
      assert.ok((a.annotations?.summary ?? '').length > 0, `${a.alert}: summary`)
      assert.ok((a.annotations?.description ?? '').length > 0, `${a.alert}: description`)
      const url = a.annotations?.runbook_url ?? ''
      assert.match(url, /docs\/alerts\.md#/, `${a.alert}: runbook_url`)
      assert.ok(anchors.has(url.split('#')[1] ?? ''), `${a.alert}: docs/alerts.md has no section #${url.split('#')[1]}`)
      assert.ok(fired.has(a.alert), `${a.alert}: no promtool unit test fires it`)
      // the panel it links to is checked against the dashboards by e2e/test/dashboards.test.ts
      assert.match(a.annotations?.dashboard_url ?? '', /^\/d\/pos-relay-(fleet|operator)\/[a-z-]+\?(.+&)?viewPanel=\d+$/, `${a.alert}: dashboard_url`)
      // labels are bounded: never a peer or an account
      assert.doesNotMatch(a.expr, /peer|account/i, `${a.alert}: groups by a peer or account label`)
    }
  })

  it('values.schema.json knows monitoring.prometheusRule and refuses a misspelt knob under it', async () => {
    const r = await helmOffline(['template', 'pos-relay', CHART_DIR, '--show-only', 'templates/prometheusrule.yaml', '--set', 'monitoring.prometheusRule.enabled=true'])
    assert.equal(r.code, 0, r.stderr)
    const typo = await helmOffline(['template', 'pos-relay', CHART_DIR, '--set', 'monitoring.prometheusRule.disable.PosRelayMeteringBacklog=true'])
    assert.notEqual(typo.code, 0, 'a misspelt key must not be ignored')
    assert.match(typo.stderr, /disable/)
  })

  it('the chart renders exactly these rules, with additionalRuleLabels and disabled alerts applied', async () => {
    const render = async (set: string[]): Promise<any[]> => {
      const r = await helmOffline(['template', 'pos-relay', CHART_DIR, '--namespace', 'relays',
        '--show-only', 'templates/prometheusrule.yaml', ...set])
      assert.equal(r.code, 0, r.stderr)
      return parseAllDocuments(r.stdout).map((d) => d.toJS()).filter((d) => d != null)
    }
    const off = await helmOffline(['template', 'pos-relay', CHART_DIR])
    assert.doesNotMatch(off.stdout, /kind: PrometheusRule/, 'off by default')

    const [rule] = await render(['--set', 'monitoring.prometheusRule.enabled=true', '--set', 'monitoring.prometheusRule.additionalLabels.release=kps'])
    assert.equal(rule.kind, 'PrometheusRule')
    assert.equal(rule.apiVersion, 'monitoring.coreos.com/v1')
    assert.equal(rule.metadata.namespace, 'relays')
    assert.equal(rule.metadata.labels.release, 'kps')
    assert.deepEqual(rule.spec.groups, groups)

    const [tuned] = await render(['--set', 'monitoring.prometheusRule.enabled=true', '--set', 'monitoring.prometheusRule.namespace=monitoring',
      '--set', 'monitoring.prometheusRule.additionalRuleLabels.team=relays', '--set', 'monitoring.prometheusRule.additionalRuleLabels.severity=page',
      '--set', 'monitoring.prometheusRule.disabled.PosRelayMeteringBacklog=true'])
    assert.equal(tuned.metadata.namespace, 'monitoring')
    const rendered: Rule[] = tuned.spec.groups.flatMap((g: Group) => g.rules)
    assert.deepEqual(rendered.map((r) => r.alert), alerts.map((a) => a.alert).filter((n) => n !== 'PosRelayMeteringBacklog'))
    for (const r of rendered) {
      const source = alerts.find((a) => a.alert === r.alert)!
      assert.deepEqual(r.labels, { ...source.labels, team: 'relays' }, `${r.alert}: its own severity wins over additionalRuleLabels`)
      assert.equal(r.expr, source.expr)
      assert.deepEqual(r.annotations, source.annotations)
    }

    // dashboard_url: a path under Grafana's URL, prefixed with grafanaUrl when given
    const [linked] = await render(['--set', 'monitoring.prometheusRule.enabled=true', '--set', 'monitoring.prometheusRule.grafanaUrl=https://grafana.example.com/'])
    for (const r of linked.spec.groups.flatMap((g: Group) => g.rules) as Rule[]) {
      const source = alerts.find((a) => a.alert === r.alert)!
      assert.equal(r.annotations?.dashboard_url, `https://grafana.example.com${source.annotations?.dashboard_url ?? ''}`, r.alert)
      assert.equal(r.annotations?.runbook_url, source.annotations?.runbook_url)
    }
  })
})
