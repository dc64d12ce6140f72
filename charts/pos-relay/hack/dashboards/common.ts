// Shared pieces of the chart's Grafana dashboards, built with Grafana's typed
// Foundation SDK (@grafana/grafana-foundation-sdk): the SDK's builders carry
// Grafana's own dashboard schema, so a field or option that Grafana does not
// know fails `npm run typecheck` instead of being ignored by Grafana.
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import * as common from '@grafana/grafana-foundation-sdk/common'
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus'
import * as stat from '@grafana/grafana-foundation-sdk/stat'
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries'

// eslint-disable-next-line no-template-curly-in-string -- Grafana's own variable syntax, not a template literal
export const DS = { type: 'prometheus', uid: '${datasource}' }
export const RATE = '$__rate_interval'
/** where the runbooks live (docs/alerts.md, one section per alert) */
export const RUNBOOKS = 'https://github.com/pos-relay/pos-relay/blob/main/docs/alerts.md'

/** URL path of a dashboard (Grafana's /d/<uid>/<slug>) */
export function dashboardPath (uid: string, title: string): string {
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
  return `/d/${uid}/${slug}`
}

/** A Prometheus target; `table` makes it an instant query in table format (for the relay table). */
export function query (expr: string, legend = '', table = false): prometheus.DataqueryBuilder {
  const q = new prometheus.DataqueryBuilder().datasource(DS).expr(expr).legendFormat(legend)
  return table ? q.instant().format(prometheus.PromQueryFormat.Table) : q.range()
}

/**
 * A dashboard variable from label_values(<metric{selector}>, <label>), multi-valued with an All option.
 * Without `allValue` Grafana expands All to the regex of every value the query found, so a query
 * filtered by it never reaches series of other jobs (the operator's `job`: cert-manager exports
 * the same controller-runtime metric names); with `allValue: '.*'` it also matches series
 * without the label (relays outside any RelayPool have no `pool`).
 */
export function labelVariable (v: { name: string, title: string, label?: string, metric: string, description: string, allValue?: string }): dashboard.QueryVariableBuilder {
  const q = `label_values(${v.metric}, ${v.label ?? v.name})`
  const b = new dashboard.QueryVariableBuilder(v.name)
    .label(v.title)
    .description(v.description)
    .datasource(DS)
    .query({ query: q, refId: 'PrometheusVariableQueryEditor-VariableQuery' })
    .definition(q)
    .multi(true)
    .includeAll(true)
    .current({ selected: true, text: ['All'], value: ['$__all'] })
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.NaturalAsc)
  return v.allValue != null ? b.allValue(v.allValue) : b
}

export function datasourceVariable (): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder('datasource').label('Data source').type('prometheus')
}

/** A panel link to an alert's runbook: the panel shows what the alert watches. */
export function runbookLink (alert: string): dashboard.DashboardLinkBuilder {
  return new dashboard.DashboardLinkBuilder(`Runbook: ${alert}`)
    .type(dashboard.DashboardLinkType.Link)
    .url(`${RUNBOOKS}#${alert.toLowerCase()}`)
    .targetBlank(true)
}

/** Panel ids are given in order and kept: alerts link to panels by id (viewPanel), a test checks every link. */
export class Ids {
  private n = 0
  next (): number { return ++this.n }
}

export function row (ids: Ids, title: string): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title).id(ids.next())
}

const green = { value: null as unknown as number, color: 'green' }

export function thresholds (...steps: Array<[number | null, string]>): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute)
    .steps(steps.length > 0 ? steps.map(([value, color]) => ({ value: value as number, color })) : [green])
}

export interface PanelOpts { unit?: string, span?: number, thresholds?: dashboard.ThresholdsConfigBuilder, decimals?: number, alerts?: string[] }

export function statPanel (ids: Ids, title: string, description: string, expr: string, o: PanelOpts = {}): stat.PanelBuilder {
  const p = new stat.PanelBuilder()
    .id(ids.next())
    .title(title)
    .description(description)
    .datasource(DS)
    .withTarget(query(expr))
    .unit(o.unit ?? 'none')
    .span(o.span ?? 4)
    .height(4)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('').values(false))
    .colorMode(common.BigValueColorMode.Value)
    .graphMode(common.BigValueGraphMode.Area)
    .thresholds(o.thresholds ?? thresholds())
  if (o.decimals != null) p.decimals(o.decimals)
  if (o.alerts != null) p.links(o.alerts.map(runbookLink))
  return p
}

export function timeseriesPanel (ids: Ids, title: string, description: string, targets: Array<[string, string]>, o: PanelOpts = {}): timeseries.PanelBuilder {
  const p = new timeseries.PanelBuilder()
    .id(ids.next())
    .title(title)
    .description(description)
    .datasource(DS)
    .targets(targets.map(([expr, legend]) => query(expr, legend)))
    .unit(o.unit ?? 'short')
    .span(o.span ?? 12)
    .height(8)
    .drawStyle(common.GraphDrawStyle.Line)
    .fillOpacity(10)
    .lineWidth(1)
    .showPoints(common.VisibilityMode.Never)
    .legend(new common.VizLegendOptionsBuilder().displayMode(common.LegendDisplayMode.List).placement(common.LegendPlacement.Bottom).showLegend(true))
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending))
  if (o.alerts != null) p.links(o.alerts.map(runbookLink))
  return p
}

export function dashboardBase (uid: string, title: string, description: string): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['pos-relay'])
    .timezone('browser')
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .refresh('30s')
    .time({ from: 'now-6h', to: 'now' })
    .annotation(new dashboard.AnnotationQueryBuilder()
      .name('Annotations & Alerts')
      .builtIn(1)
      .datasource({ type: 'grafana', uid: '-- Grafana --' })
      .enable(true)
      .hide(true)
      .iconColor('rgba(0, 211, 255, 1)')
      .type('dashboard'))
    .link(new dashboard.DashboardLinkBuilder('pos-relay dashboards')
      .type(dashboard.DashboardLinkType.Dashboards)
      .tags(['pos-relay'])
      .asDropdown(true)
      .includeVars(false)
      .keepTime(true))
    .withVariable(datasourceVariable())
}
