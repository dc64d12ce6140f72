/**
 * The PromQL of the chart's Grafana dashboards (charts/pos-relay/dashboards/*.json),
 * with their template variables substituted the way Grafana does: each
 * variable's label_values() query is run against Prometheus (with the variables
 * before it substituted), and `All` becomes the variable's allValue or, without
 * one, the regex of every value found (`(a|b)`). A variable that resolves to no
 * value fails, as would a dashboard whose drop-down stays empty.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CHART_DIR } from '../harness.ts'

export interface Expr { dashboard: string, panel: string, expr: string, refId?: string, table?: boolean }
export interface Variable { name: string, metric: string, label: string, allValue?: string }
/** variable name → what `$name` becomes */
export type Values = Record<string, string>

/** what $__rate_interval becomes: several scrapes at the 1 s interval */
export const RATE_INTERVAL = '15s'

export function readDashboard (file: string): any {
  return JSON.parse(readFileSync(join(CHART_DIR, 'dashboards', file), 'utf8'))
}

/** Every panel target's expression (rows' nested panels too). */
export function dashboardExpressions (file: string): Expr[] {
  const d = readDashboard(file)
  const out: Expr[] = []
  const walk = (panels: any[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ dashboard: d.title, panel: p.title, expr: t.expr, refId: t.refId, table: t.format === 'table' })
      walk(p.panels ?? [])
    }
  }
  walk(d.panels)
  return out
}

/** The dashboard's label_values(...) query variables, in order. */
export function dashboardVariables (file: string): Variable[] {
  const out: Variable[] = []
  for (const v of readDashboard(file).templating?.list ?? []) {
    if (v.type !== 'query') continue
    const q: string | undefined = typeof v.query === 'string' ? v.query : v.query?.query
    const m = q != null ? /^label_values\((.+),\s*([a-zA-Z_]\w*)\)$/.exec(q) : null
    if (m == null) throw new Error(`variable $${v.name as string}: not a label_values() query: ${q}`)
    out.push({ name: v.name, metric: m[1]!, label: m[2]!, allValue: v.allValue })
  }
  return out
}

/** Grafana's substitution of `$var` / `${var}` and its built-in intervals. */
export function substitute (expr: string, values: Values): string {
  return expr.replaceAll('$__rate_interval', RATE_INTERVAL).replaceAll('$__interval', '5s')
    .replace(/\$\{?([a-zA-Z_]\w*)\}?/g, (all, name: string) => values[name] ?? all)
}

const escapeRegex = (s: string): string => s.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&')

/**
 * Resolves the variables in order, as Grafana's drop-downs would with `All`
 * selected, or with the value in `pick` for a variable named there.
 * `query` runs an instant PromQL query.
 */
export async function resolveVariables (vars: Variable[], query: (expr: string) => Promise<any[]>, pick: Record<string, string> = {}): Promise<{ values: Values, found: Record<string, string[]> }> {
  const values: Values = {}
  const found: Record<string, string[]> = {}
  for (const v of vars) {
    const expr = substitute(`count by (${v.label}) (${v.metric})`, values)
    const got = (await query(expr)).map((r) => r.metric[v.label] as string | undefined).filter((x): x is string => x != null).sort()
    if (got.length === 0) throw new Error(`variable $${v.name} finds no value: ${expr}`)
    found[v.name] = got
    const chosen = pick[v.name]
    if (chosen != null && !got.includes(chosen)) throw new Error(`variable $${v.name}: ${chosen} is not among ${got.join(', ')}`)
    values[v.name] = chosen != null ? escapeRegex(chosen) : v.allValue ?? `(${got.map(escapeRegex).join('|')})`
  }
  return { values, found }
}

/**
 * Polls until every expression returns at least one sample (rate() needs a
 * few scrapes after the traffic), then throws listing all that never did.
 */
export async function assertAllData (exprs: Expr[], values: Values, query: (expr: string) => Promise<any[]>, timeoutMs = 45_000): Promise<void> {
  let pending = exprs
  const deadline = Date.now() + timeoutMs
  while (pending.length > 0 && Date.now() < deadline) {
    const still: Expr[] = []
    for (const e of pending) if ((await query(substitute(e.expr, values))).length === 0) still.push(e)
    pending = still
    if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 1000))
  }
  if (pending.length > 0) {
    throw new Error(`no data for ${pending.length} of ${exprs.length} expressions:\n` +
      pending.map((e) => `  ${e.dashboard} / ${e.panel}: ${substitute(e.expr, values)}`).join('\n'))
  }
}

/**
 * What an alert's dashboard_url (annotation, expanded) opens: the panel of the
 * dashboard with that uid and its expressions, the variables set from the URL's
 * var-* parameters (each must be a value the variable's drop-down offers).
 */
export async function followDashboardUrl (url: string, query: (expr: string) => Promise<any[]>): Promise<{ panel: Expr[], values: Values }> {
  const m = /^(?:https?:\/\/[^/]+)?\/d\/([\w-]+)\/[\w-]+\?(.*)$/.exec(url)
  if (m == null) throw new Error(`not a dashboard URL: ${url}`)
  const file = ['fleet-overview.json', 'operator.json'].find((f) => readDashboard(f).uid === m[1])
  if (file == null) throw new Error(`${url}: no dashboard with uid ${m[1]!}`)
  const params = new URLSearchParams(m[2])
  const panelTitle = (readDashboard(file).panels as any[]).find((p) => String(p.id) === params.get('viewPanel'))?.title
  const panel = dashboardExpressions(file).filter((e) => e.panel === panelTitle)
  if (panel.length === 0) throw new Error(`${url}: no panel ${params.get('viewPanel')} with queries`)
  const pick = Object.fromEntries([...params].filter(([k]) => k.startsWith('var-')).map(([k, v]) => [k.slice(4), v]))
  return { panel, values: (await resolveVariables(dashboardVariables(file), query, pick)).values }
}
