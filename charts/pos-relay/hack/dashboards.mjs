// Generates charts/pos-relay/dashboards/*.json (the committed output; a test
// fails when it drifts). Run: npx node charts/pos-relay/hack/dashboards.mjs
// Every PromQL expression here must return data against a real Prometheus
// scraping a relay, discovery and the operator (e2e/kube/test/dashboards.test.ts).
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
const out = process.argv[2] ?? fileURLToPath(new URL('../dashboards', import.meta.url))
// eslint-disable-next-line no-template-curly-in-string -- Grafana's own variable syntax, not a template literal
const DS = { type: 'prometheus', uid: '${datasource}' }
const R = '$__rate_interval'
const sel = 'namespace=~"$namespace", pool=~"$pool"'
let id = 0
function panel (type, title, description, targets, gridPos, fieldConfig = {}, options = {}) {
  return {
    id: ++id,
    type,
    title,
    description,
    datasource: DS,
    gridPos,
    targets: targets.map(([expr, legendFormat], i) => ({ datasource: DS, expr, legendFormat: legendFormat ?? '', refId: String.fromCharCode(65 + i), range: true, instant: false })),
    fieldConfig: { defaults: { ...fieldConfig }, overrides: [] },
    options
  }
}
const stat = (title, description, expr, x, y, unit = 'none', extra = {}) => panel('stat', title, description, [[expr, '']], { x, y, w: 4, h: 4 }, { unit, ...extra }, { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area' })
const ts = (title, description, targets, x, y, w = 12, unit = 'short') => panel('timeseries', title, description, targets, { x, y, w, h: 8 }, { unit, custom: { drawStyle: 'line', fillOpacity: 10, lineWidth: 1, showPoints: 'never' } }, { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } })
const row = (title, y) => ({ id: ++id, type: 'row', title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] })
const dsVar = { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0, refresh: 1, regex: '', options: [] }
const queryVar = (name, label, query) => ({
  name,
  label,
  type: 'query',
  datasource: DS,
  query: { query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
  definition: query,
  includeAll: true,
  allValue: '.*',
  multi: true,
  current: { selected: true, text: ['All'], value: ['$__all'] },
  refresh: 2,
  sort: 1,
  hide: 0,
  regex: '',
  options: []
})
function dashboard (uid, title, description, panels, vars) {
  return {
    uid,
    title,
    description,
    tags: ['pos-relay'],
    timezone: 'browser',
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    annotations: { list: [{ builtIn: 1, datasource: { type: 'grafana', uid: '-- Grafana --' }, enable: true, hide: true, iconColor: 'rgba(0, 211, 255, 1)', name: 'Annotations & Alerts', type: 'dashboard' }] },
    templating: { list: [dsVar, ...vars] },
    links: [{ title: 'pos-relay dashboards', type: 'dashboards', tags: ['pos-relay'], asDropdown: true }],
    panels
  }
}

// ---------------------------------------------------------------- fleet overview
id = 0
const fleet = dashboard('pos-relay-fleet', 'pos-relay / Fleet overview',
  'Relays (Circuit Relay v2), reservations, circuits, bytes relayed, denials and discovery registration health. Relay series come from the relay pods (PodMonitor: labels namespace, pool, pod, node).', [
    row('Fleet', 0),
    stat('Relays', 'Relay processes scraped', `count(pos_relay_draining{${sel}})`, 0, 1),
    stat('Registered', 'Relays whose last registration with the discovery API succeeded and has not expired', `sum(pos_relay_registered{${sel}})`, 4, 1),
    stat('Not registered', 'Relays scraped but not registered in discovery', `count(pos_relay_registered{${sel}}) - sum(pos_relay_registered{${sel}})`, 8, 1, 'none', { thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'red', value: 1 }] } }),
    stat('Draining', 'Relays draining after SIGTERM', `sum(pos_relay_draining{${sel}})`, 12, 1),
    stat('Listed by discovery', 'Relays GET /api/p2p/relays returned the last time it was asked', 'max(pos_relay_discovery_relays_listed)', 16, 1),
    stat('Registry store up', '1 when every discovery replica reaches Redis', 'min(pos_relay_discovery_store_up)', 20, 1, 'none', { thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] } }),
    row('Reservations and circuits', 5),
    ts('Reservations held', 'Reservations currently held, per pool', [[`sum by (pool) (pos_relay_reservations_active{${sel}})`, '{{pool}}']], 0, 6),
    ts('Reservation requests', 'Reservation answers per second, by result (ok, refreshed, refused)', [[`sum by (result) (rate(pos_relay_reservations_total{${sel}}[${R}]))`, '{{result}}']], 12, 6, 12, 'reqps'),
    ts('Circuits open', 'Relayed circuits currently open, per pool', [[`sum by (pool) (pos_relay_circuits_active{${sel}})`, '{{pool}}']], 0, 14),
    ts('Circuit requests', 'CONNECT requests per second, by result (opened, denied, failed)', [[`sum by (result) (rate(pos_relay_circuits_total{${sel}}[${R}]))`, '{{result}}']], 12, 14, 12, 'reqps'),
    ts('Circuits closed', 'Circuits closed per second, by reason (closed, data_limit, duration_limit, idle_timeout, quota, error, shutdown)', [[`sum by (reason) (rate(pos_relay_circuit_ends_total{${sel}}[${R}]))`, '{{reason}}']], 0, 22, 12, 'ops'),
    ts('Bytes relayed', 'Bytes per second carried through circuits, by direction', [[`sum by (direction) (rate(pos_relay_relayed_bytes_total{${sel}}[${R}]))`, '{{direction}}']], 12, 22, 12, 'Bps'),
    ts('Denials', 'Requests refused by the relays per second, by reason', [[`sum by (reason) (rate(pos_relay_denials_total{${sel}}[${R}]))`, '{{reason}}']], 0, 30, 12, 'reqps'),
    ts('Connections', 'Open libp2p connections, and new ones per second by direction', [[`sum(pos_relay_connections_active{${sel}})`, 'open'], [`sum by (direction) (rate(pos_relay_connections_total{${sel}}[${R}]))`, 'new {{direction}}/s']], 12, 30),
    row('Registration health', 38),
    ts('Registration attempts', 'Registrations and heartbeats sent by relays to the discovery API per second, by result', [[`sum by (result) (rate(pos_relay_registration_attempts_total{${sel}}[${R}]))`, '{{result}}']], 0, 39, 8, 'reqps'),
    ts('Registration failures', 'Failed registrations/heartbeats per second (relays keep relaying and retry with backoff)', [[`sum(rate(pos_relay_registration_failures_total{${sel}}[${R}]))`, 'failures']], 8, 39, 8, 'reqps'),
    ts('Discovery registrations', 'POST /api/p2p/relays handled by the discovery API per second, by result', [[`sum by (result) (rate(pos_relay_discovery_registrations_total[${R}]))`, '{{result}}']], 16, 39, 8, 'reqps'),
    ts('Discovery requests', 'Discovery API requests per second, by route and status code', [[`sum by (route, status_code) (rate(pos_relay_discovery_http_requests_total[${R}]))`, '{{route}} {{status_code}}']], 0, 47, 12, 'reqps'),
    ts('Discovery latency p99', '99th percentile of discovery API request duration', [[`histogram_quantile(0.99, sum by (le) (rate(pos_relay_discovery_http_request_duration_seconds_bucket[${R}])))`, 'p99']], 12, 47, 12, 's'),
    row('Resources', 55),
    ts('Relay memory (RSS)', 'Resident memory of each relay process', [[`process_resident_memory_bytes and on (instance) pos_relay_draining{${sel}}`, '{{pod}} {{instance}}']], 0, 56, 12, 'bytes'),
    ts('Relay CPU', 'CPU seconds per second of each relay process', [[`rate(process_cpu_seconds_total[${R}]) and on (instance) pos_relay_draining{${sel}}`, '{{pod}} {{instance}}']], 12, 56, 12, 'percentunit'),
    // fleet totals only: per-account usage is billing data (pos-relay usage), never a label
    row('Accounts (relays with auth on)', 64),
    ts('Tickets issued and refused', 'POST /api/p2p/tickets answered by the discovery API per second: ok (issued) or why it was refused (unauthorized, tier_unknown, throttled, invalid, unavailable)', [[`sum by (result) (rate(pos_relay_discovery_ticket_requests_total[${R}]))`, '{{result}}']], 0, 65, 8, 'reqps'),
    ts('Tickets presented to relays', 'Tickets presented to the relays per second, by result (ok or why the relay rejected it)', [[`sum by (result) (rate(pos_relay_tickets_total{${sel}}[${R}]))`, '{{result}}']], 8, 65, 8, 'reqps'),
    ts('Revocations delivered', 'Account and ticket revocations reaching the relays per second: applied (a holder lost its reservation and circuits) or not held there', [[`sum by (kind, result) (rate(pos_relay_revocations_total{${sel}}[${R}]))`, '{{kind}} {{result}}']], 16, 65, 8, 'ops'),
    ts('Metered bytes', 'Bytes per second metered to accounts, by direction (per-account figures: pos-relay usage)', [[`sum by (direction) (rate(pos_relay_metered_bytes_total{${sel}}[${R}]))`, '{{direction}}']], 0, 73, 12, 'Bps'),
    ts('Quota cuts', 'Circuits ended because the account used up its monthly quota, and circuits refused for it, per second', [
      [`sum(rate(pos_relay_circuit_ends_total{${sel}, reason="quota"}[${R}]))`, 'circuits cut'],
      [`sum(rate(pos_relay_denials_total{${sel}, reason="quota"}[${R}]))`, 'circuits refused']
    ], 12, 73, 12, 'ops')
  ], [queryVar('namespace', 'Namespace', 'label_values(pos_relay_draining, namespace)'), queryVar('pool', 'RelayPool', 'label_values(pos_relay_draining{namespace=~"$namespace"}, pool)')])

// ---------------------------------------------------------------- operator
id = 0
const operator = dashboard('pos-relay-operator', 'pos-relay / Operator',
  'Health of the pos-relay operator: leader election, reconcile rate, errors and duration, work queue, relays by state (controller-runtime metric names).', [
    row('Operator', 0),
    stat('Leaders', 'Operator replicas holding the Lease (should be 1)', 'sum(leader_election_master_status)', 0, 1, 'none', { thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }, { color: 'red', value: 2 }] } }),
    stat('Replicas scraped', 'Operator processes exposing metrics', 'count(leader_election_master_status)', 4, 1),
    stat('Queue depth', 'Keys waiting in the work queues', 'sum(workqueue_depth)', 8, 1),
    stat('Reconcile errors (5m)', 'Reconciles that returned an error in the last 5 minutes', 'sum(increase(controller_runtime_reconcile_errors_total[5m]))', 12, 1, 'none', { decimals: 0 }),
    stat('Reconciles/s', 'Reconciles per second over 5 minutes, all controllers', 'sum(rate(controller_runtime_reconcile_total[5m]))', 16, 1, 'ops'),
    stat('Relays managed', 'Relays the operator manages, all states', 'sum(pos_relay_operator_relays)', 20, 1),
    row('Reconciles', 5),
    ts('Reconciles', 'Reconciles per second, by controller and result (success, error, requeue, requeue_after)', [['sum by (controller, result) (rate(controller_runtime_reconcile_total[' + R + ']))', '{{controller}} {{result}}']], 0, 6, 12, 'ops'),
    ts('Reconcile errors', 'Reconcile errors per second, by controller', [['sum by (controller) (rate(controller_runtime_reconcile_errors_total[' + R + ']))', '{{controller}}']], 12, 6, 12, 'ops'),
    ts('Reconcile duration', 'Reconcile time quantiles, by controller', [
      ['histogram_quantile(0.5, sum by (le, controller) (rate(controller_runtime_reconcile_time_seconds_bucket[' + R + '])))', 'p50 {{controller}}'],
      ['histogram_quantile(0.99, sum by (le, controller) (rate(controller_runtime_reconcile_time_seconds_bucket[' + R + '])))', 'p99 {{controller}}']
    ], 0, 14, 12, 's'),
    ts('Work queue depth', 'Keys waiting, by queue', [['sum by (name) (workqueue_depth)', '{{name}}']], 12, 14),
    ts('Relays by state', 'Relays the operator manages, by state', [['sum by (state) (pos_relay_operator_relays)', '{{state}}']], 0, 22),
    ts('Leader', 'Which replica holds the Lease (1 = leader)', [['max by (name, pod, instance) (leader_election_master_status)', '{{pod}} {{instance}} {{name}}']], 12, 22),
    ts('Operator memory (RSS)', 'Resident memory of the operator processes', [['process_resident_memory_bytes and on (instance) leader_election_master_status', '{{pod}} {{instance}}']], 0, 30, 24, 'bytes')
  ], [])

writeFileSync(`${out}/fleet-overview.json`, JSON.stringify(fleet, null, 2) + '\n')
writeFileSync(`${out}/operator.json`, JSON.stringify(operator, null, 2) + '\n')
