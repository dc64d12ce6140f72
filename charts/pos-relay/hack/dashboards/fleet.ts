// The fleet overview: relays (Circuit Relay v2), their state one by one,
// reservations, circuits, bytes, denials, registration, what the relays depend
// on, and discovery. Relay series come from the chart's PodMonitor (labels
// namespace, pool, pod, node); discovery's from its ServiceMonitor (job).
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import * as common from '@grafana/grafana-foundation-sdk/common'
import * as table from '@grafana/grafana-foundation-sdk/table'
import { DS, Ids, RATE, dashboardBase, dashboardPath, labelVariable, query, row, runbookLink, statPanel, thresholds, timeseriesPanel } from './common.ts'

export const FLEET_UID = 'pos-relay-fleet'
export const FLEET_TITLE = 'pos-relay / Fleet overview'
/** every relay query: the relays of the chosen namespaces, pools and pods */
const R = 'namespace=~"$namespace", pool=~"$pool", pod=~"$pod"'
/** every discovery query: the chosen discovery jobs (All: every job that exports discovery's own metrics) */
const D = 'job=~"$discovery"'
/** what the relay's /readyz answers, as far as its metrics tell: not draining, and ticket keys known (auth on) */
const READY = `(1 - pos_relay_draining{${R}}) * (1 - pos_relay_ticket_keys_missing{${R}})`
const BY_RELAY = 'namespace, pool, pod, node'
const redWhenAbove0 = (): dashboard.ThresholdsConfigBuilder => thresholds([null, 'green'], [1, 'red'])

/** One row per relay: Ready, registered, draining, reservations, circuits, connections, bytes; a pod's name opens its drill-down. */
function relayTable (ids: Ids): table.PanelBuilder {
  const columns: Array<[string, string]> = [
    ['Ready', `max by (${BY_RELAY}) (${READY})`],
    ['Registered', `max by (${BY_RELAY}) (pos_relay_registered{${R}})`],
    ['Draining', `max by (${BY_RELAY}) (pos_relay_draining{${R}})`],
    ['Reservations', `sum by (${BY_RELAY}) (pos_relay_reservations_active{${R}})`],
    ['Circuits', `sum by (${BY_RELAY}) (pos_relay_circuits_active{${R}})`],
    ['Connections', `sum by (${BY_RELAY}) (pos_relay_connections_active{${R}})`],
    // a relay that never relayed has no pos_relay_relayed_bytes_total series yet: 0, not an empty cell
    ['Relayed', `sum by (${BY_RELAY}) (rate(pos_relay_relayed_bytes_total{${R}}[${RATE}])) or max by (${BY_RELAY}) (0 * pos_relay_draining{${R}})`]
  ]
  const refId = (i: number): string => String.fromCharCode(65 + i)
  const yesNo = (one: [string, string], zero: [string, string]): dashboard.ValueMapping[] => [{
    type: dashboard.MappingType.ValueToText,
    options: { 1: { text: one[0], color: one[1], index: 0 }, 0: { text: zero[0], color: zero[1], index: 1 } }
  }]
  const background = { id: 'custom.cellOptions', value: { type: common.TableCellDisplayMode.ColorBackground } }
  return new table.PanelBuilder()
    .id(ids.next())
    .title('Relays')
    .description('Every relay scraped, one row each: Ready (not draining and, with auth on, ticket keys known: what its /readyz answers), registered in discovery, draining, and what it carries now. Not Ready first; a Ready relay that is not registered is not told to any client. Click a pod for its own panels.')
    .datasource(DS)
    .targets(columns.map(([, expr], i) => query(expr, '', true).refId(refId(i))))
    .span(24)
    .height(10)
    .withTransformation({ id: 'merge', options: {} })
    .withTransformation({
      id: 'organize',
      options: {
        excludeByName: { Time: true },
        indexByName: Object.fromEntries(['namespace', 'pool', 'pod', 'node', ...columns.map(([name]) => name)].map((n, i) => [n, i])),
        renameByName: Object.fromEntries(columns.map(([name], i) => [`Value #${refId(i)}`, name]))
      }
    })
    .sortBy([new common.TableSortByFieldStateBuilder().displayName('Ready').desc(false)])
    .overrideByName('Ready', [{ id: 'mappings', value: yesNo(['Ready', 'green'], ['Not ready', 'red']) }, background])
    .overrideByName('Registered', [{ id: 'mappings', value: yesNo(['yes', 'green'], ['no', 'red']) }, background])
    .overrideByName('Draining', [{ id: 'mappings', value: yesNo(['draining', 'orange'], ['no', 'transparent']) }, background])
    .overrideByName('Relayed', [{ id: 'unit', value: 'Bps' }])
    .overrideByName('pod', [{
      id: 'links',
      value: [{
        title: 'Relay ${__value.text}', // eslint-disable-line no-template-curly-in-string -- Grafana's variable syntax
        url: `${dashboardPath(FLEET_UID, FLEET_TITLE)}?\${__url_time_range}&\${datasource:queryparam}&var-namespace=\${__data.fields.namespace}&var-pool=\${__data.fields.pool}&var-pod=\${__value.raw}`
      }]
    }])
    .links(['PosRelayReadyNotRegistered', 'PosRelayTicketKeysMissing'].map(runbookLink))
}

export function fleetDashboard (): dashboard.Dashboard {
  const ids = new Ids()
  const ts = timeseriesPanel
  const d = dashboardBase(FLEET_UID, FLEET_TITLE,
    'Relays (Circuit Relay v2) one by one and in total: state, reservations, circuits, bytes relayed, denials, registration, what the relays depend on, and the discovery API. Relay series come from the relay pods (PodMonitor: labels namespace, pool, pod, node); discovery series from its ServiceMonitor (job).')
    .withVariable(labelVariable({ name: 'namespace', title: 'Namespace', metric: 'pos_relay_draining', description: 'Namespaces with relays', allValue: '.*' }))
    .withVariable(labelVariable({ name: 'pool', title: 'RelayPool', metric: 'pos_relay_draining{namespace=~"$namespace"}', description: 'RelayPools of those namespaces (All includes relays outside any pool)', allValue: '.*' }))
    .withVariable(labelVariable({ name: 'pod', title: 'Relay pod', metric: 'pos_relay_draining{namespace=~"$namespace", pool=~"$pool"}', description: 'Relay pods of those pools: pick one to drill down', allValue: '.*' }))
    .withVariable(labelVariable({ name: 'discovery', title: 'Discovery', label: 'job', metric: 'pos_relay_discovery_store_up', description: 'Discovery API jobs (All: every job that exports discovery\'s metrics, nothing else)' }))

    .withRow(row(ids, 'Fleet'))
    .withPanel(statPanel(ids, 'Relays', 'Relay processes scraped', `count(pos_relay_draining{${R}})`))
    .withPanel(statPanel(ids, 'Registered', 'Relays whose last registration with the discovery API succeeded and has not expired', `sum(pos_relay_registered{${R}})`))
    .withPanel(statPanel(ids, 'Not registered', 'Relays scraped but not registered in discovery (the Relays table below says which)', `count(pos_relay_registered{${R}}) - sum(pos_relay_registered{${R}})`, { thresholds: redWhenAbove0(), alerts: ['PosRelayReadyNotRegistered'] }))
    .withPanel(statPanel(ids, 'Draining', 'Relays draining after SIGTERM', `sum(pos_relay_draining{${R}})`))
    .withPanel(statPanel(ids, 'Listed by discovery', 'Relays GET /api/p2p/relays returned the last time it was asked', `max(pos_relay_discovery_relays_listed{${D}})`))
    .withPanel(statPanel(ids, 'Registry store up', '1 when every discovery replica reaches Redis', `min(pos_relay_discovery_store_up{${D}})`, { thresholds: thresholds([null, 'red'], [1, 'green']), alerts: ['PosRelayDiscoveryStoreDown'] }))

    .withRow(row(ids, 'Relays'))
    .withPanel(relayTable(ids))

    .withRow(row(ids, 'Reservations and circuits'))
    .withPanel(ts(ids, 'Reservations held', 'Reservations currently held, per pool', [[`sum by (pool) (pos_relay_reservations_active{${R}})`, '{{pool}}']]))
    .withPanel(ts(ids, 'Reservation requests', 'Reservation answers per second, by result (ok, refreshed, refused)', [[`sum by (result) (rate(pos_relay_reservations_total{${R}}[${RATE}]))`, '{{result}}']], { unit: 'reqps' }))
    .withPanel(ts(ids, 'Circuits open', 'Relayed circuits currently open, per pool', [[`sum by (pool) (pos_relay_circuits_active{${R}})`, '{{pool}}']]))
    .withPanel(ts(ids, 'Circuit requests', 'CONNECT requests per second, by result (opened, denied, failed)', [[`sum by (result) (rate(pos_relay_circuits_total{${R}}[${RATE}]))`, '{{result}}']], { unit: 'reqps' }))
    .withPanel(ts(ids, 'Circuits closed', 'Circuits closed per second, by reason (closed, data_limit, duration_limit, idle_timeout, quota, error, shutdown)', [[`sum by (reason) (rate(pos_relay_circuit_ends_total{${R}}[${RATE}]))`, '{{reason}}']], { unit: 'ops' }))
    .withPanel(ts(ids, 'Bytes relayed', 'Bytes per second carried through circuits, by direction', [[`sum by (direction) (rate(pos_relay_relayed_bytes_total{${R}}[${RATE}]))`, '{{direction}}']], { unit: 'Bps' }))
    .withPanel(ts(ids, 'Denials', 'Requests refused by the relays per second, by pool and reason (reservation_limit: the relays are full)', [[`sum by (pool, reason) (rate(pos_relay_denials_total{${R}}[${RATE}]))`, '{{pool}} {{reason}}']], { unit: 'reqps', alerts: ['PosRelayReservationsRefusedAtCapacity'] }))
    .withPanel(ts(ids, 'Connections', 'Open libp2p connections, and new ones per second by direction', [[`sum(pos_relay_connections_active{${R}})`, 'open'], [`sum by (direction) (rate(pos_relay_connections_total{${R}}[${RATE}]))`, 'new {{direction}}/s']]))

    .withRow(row(ids, 'Per relay'))
    .withPanel(ts(ids, 'Reservations by relay', 'Reservations each relay holds', [[`sum by (pod) (pos_relay_reservations_active{${R}})`, '{{pod}}']], { span: 6 }))
    .withPanel(ts(ids, 'Circuits by relay', 'Circuits open on each relay', [[`sum by (pod) (pos_relay_circuits_active{${R}})`, '{{pod}}']], { span: 6 }))
    .withPanel(ts(ids, 'Bytes relayed by relay', 'Bytes per second each relay carries, both directions', [[`sum by (pod) (rate(pos_relay_relayed_bytes_total{${R}}[${RATE}]))`, '{{pod}}']], { span: 6, unit: 'Bps' }))
    .withPanel(ts(ids, 'Denials by relay', 'Requests each relay refused per second, by reason', [[`sum by (pod, reason) (rate(pos_relay_denials_total{${R}}[${RATE}]))`, '{{pod}} {{reason}}']], { span: 6, unit: 'reqps' }))

    .withRow(row(ids, 'Registration health'))
    .withPanel(ts(ids, 'Registration attempts', 'Registrations and heartbeats sent by relays to the discovery API per second, by result', [[`sum by (result) (rate(pos_relay_registration_attempts_total{${R}}[${RATE}]))`, '{{result}}']], { span: 8, unit: 'reqps' }))
    .withPanel(ts(ids, 'Registration failures', 'Failed registrations/heartbeats per second, by relay (relays keep relaying and retry with backoff)', [[`sum by (pod) (rate(pos_relay_registration_failures_total{${R}}[${RATE}]))`, '{{pod}}']], { span: 8, unit: 'reqps' }))
    .withPanel(ts(ids, 'Discovery registrations', 'POST /api/p2p/relays handled by the discovery API per second, by result', [[`sum by (result) (rate(pos_relay_discovery_registrations_total{${D}}[${RATE}]))`, '{{result}}']], { span: 8, unit: 'reqps' }))
    .withPanel(ts(ids, 'Discovery requests', 'Discovery API requests per second, by route and status code', [[`sum by (route, status_code) (rate(pos_relay_discovery_http_requests_total{${D}}[${RATE}]))`, '{{route}} {{status_code}}']], { alerts: ['PosRelayDiscoveryErrors'], unit: 'reqps' }))
    .withPanel(ts(ids, 'Discovery latency p99', '99th percentile of discovery API request duration', [[`histogram_quantile(0.99, sum by (le) (rate(pos_relay_discovery_http_request_duration_seconds_bucket{${D}}[${RATE}])))`, 'p99']], { unit: 's' }))

    .withRow(row(ids, 'What the relays depend on'))
    .withPanel(ts(ids, 'Rate limits shared through Redis', 'Per relay: 1 while its rate limits are shared through Redis; checks per second answered by its local fallback because Redis was away (each relay then allows the full limit alone)', [
      [`max by (pod) (pos_relay_rate_limit_redis_up{${R}})`, '{{pod}} Redis up'],
      [`sum by (pod) (rate(pos_relay_rate_limit_fallback_total{${R}}[${RATE}]))`, '{{pod}} fallback/s']
    ], { span: 8, alerts: ['PosRelayRateLimitRedisDown'] }))
    .withPanel(ts(ids, 'Ticket keys missing', 'Per relay with auth on: 1 while it knows no ticket key (it refuses every peer and is not Ready)', [[`max by (pod) (pos_relay_ticket_keys_missing{${R}})`, '{{pod}}']], { span: 8, alerts: ['PosRelayTicketKeysMissing'] }))
    .withPanel(ts(ids, 'Metering backlog', 'Per relay with auth on: usage batches waiting to be written to the accounts Redis', [[`max by (pod) (pos_relay_metering_pending_batches{${R}})`, '{{pod}}']], { span: 8, alerts: ['PosRelayMeteringBacklog'] }))

    .withRow(row(ids, 'Resources'))
    .withPanel(ts(ids, 'Relay memory (RSS)', 'Resident memory of each relay process', [[`process_resident_memory_bytes{namespace=~"$namespace", pod=~"$pod"} and on (job, instance) pos_relay_draining{${R}}`, '{{pod}} {{instance}}']], { unit: 'bytes' }))
    .withPanel(ts(ids, 'Relay CPU', 'CPU seconds per second of each relay process', [[`rate(process_cpu_seconds_total{namespace=~"$namespace", pod=~"$pod"}[${RATE}]) and on (job, instance) pos_relay_draining{${R}}`, '{{pod}} {{instance}}']], { unit: 'percentunit' }))

    // fleet totals only: per-account usage is billing data (pos-relay usage), never a label
    .withRow(row(ids, 'Accounts (relays with auth on)'))
    .withPanel(ts(ids, 'Tickets issued and refused', 'POST /api/p2p/tickets answered by the discovery API per second: ok (issued) or why it was refused (unauthorized, tier_unknown, throttled, invalid, unavailable)', [[`sum by (result) (rate(pos_relay_discovery_ticket_requests_total{${D}}[${RATE}]))`, '{{result}}']], { span: 8, unit: 'reqps' }))
    .withPanel(ts(ids, 'Tickets presented to relays', 'Tickets presented to the relays per second, by result (ok or why the relay rejected it)', [[`sum by (result) (rate(pos_relay_tickets_total{${R}}[${RATE}]))`, '{{result}}']], { span: 8, unit: 'reqps' }))
    .withPanel(ts(ids, 'Revocations delivered', 'Account and ticket revocations reaching the relays per second: applied (a holder lost its reservation and circuits) or not held there', [[`sum by (kind, result) (rate(pos_relay_revocations_total{${R}}[${RATE}]))`, '{{kind}} {{result}}']], { span: 8, unit: 'ops' }))
    .withPanel(ts(ids, 'Metered bytes', 'Bytes per second metered to accounts, by direction (per-account figures: pos-relay usage)', [[`sum by (direction) (rate(pos_relay_metered_bytes_total{${R}}[${RATE}]))`, '{{direction}}']], { unit: 'Bps' }))
    .withPanel(ts(ids, 'Quota cuts', 'Circuits ended because the account used up its monthly quota, and circuits refused for it, per second', [
      [`sum(rate(pos_relay_circuit_ends_total{${R}, reason="quota"}[${RATE}]))`, 'circuits cut'],
      [`sum(rate(pos_relay_denials_total{${R}, reason="quota"}[${RATE}]))`, 'circuits refused']
    ], { unit: 'ops' }))

    // last, so the ids above (which alerts link to) stay as they were
    .withRow(row(ids, 'Limits reloaded without a restart'))
    .withPanel(ts(ids, 'Limit reloads by relay', 'Per relay: reads of its limits file (the RelayPool\'s <pool>-limits ConfigMap) that changed it, by result: applied (new limits in effect) or invalid (refused, the previous limits stay; its log line limits_reload_failed names the field)', [[`sum by (pod, result) (increase(pos_relay_limits_reloads_total{${R}}[${RATE}]))`, '{{pod}} {{result}}']], { span: 24, alerts: ['PosRelayLimitsReloadRefused'] }))
  return d.build()
}
