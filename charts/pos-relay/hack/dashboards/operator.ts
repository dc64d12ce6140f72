// The operator: leader election, reconciles, work queue, relays by state. Its
// controller-runtime metric names are shared with every other controller in
// the cluster (cert-manager's, ingress-nginx's…), so every query is scoped
// to the jobs that also export the operator's own pos_relay_operator_relays.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard'
import { Ids, RATE, dashboardBase, labelVariable, row, statPanel, thresholds, timeseriesPanel } from './common.ts'

export const OPERATOR_UID = 'pos-relay-operator'
export const OPERATOR_TITLE = 'pos-relay / Operator'
const O = 'namespace=~"$namespace", job=~"$job", pod=~"$pod"'

export function operatorDashboard (): dashboard.Dashboard {
  const ids = new Ids()
  const ts = timeseriesPanel
  return dashboardBase(OPERATOR_UID, OPERATOR_TITLE,
    'Health of the pos-relay operator: leader election, reconcile rate, errors and duration, work queue, relays by state (controller-runtime metric names, scoped to the operator\'s jobs: other controllers in the cluster are never counted).')
    .withVariable(labelVariable({ name: 'namespace', title: 'Namespace', metric: 'pos_relay_operator_relays', description: 'Namespaces with a pos-relay operator', allValue: '.*' }))
    .withVariable(labelVariable({ name: 'job', title: 'Operator', metric: 'pos_relay_operator_relays{namespace=~"$namespace"}', description: 'Operator jobs (All: every job that exports the operator\'s own metrics, never another controller)' }))
    .withVariable(labelVariable({ name: 'pod', title: 'Operator pod', metric: 'pos_relay_operator_relays{namespace=~"$namespace", job=~"$job"}', description: 'Operator replicas', allValue: '.*' }))

    .withRow(row(ids, 'Operator'))
    .withPanel(statPanel(ids, 'Leaders', 'Operator replicas holding the Lease (should be 1)', `sum(leader_election_master_status{${O}})`, { thresholds: thresholds([null, 'red'], [1, 'green'], [2, 'red']), alerts: ['PosRelayOperatorNoLeader'] }))
    .withPanel(statPanel(ids, 'Replicas scraped', 'Operator processes exposing metrics', `count(leader_election_master_status{${O}})`))
    .withPanel(statPanel(ids, 'Queue depth', 'Keys waiting in the work queues', `sum(workqueue_depth{${O}})`))
    .withPanel(statPanel(ids, 'Reconcile errors (5m)', 'Reconciles that returned an error in the last 5 minutes', `sum(increase(controller_runtime_reconcile_errors_total{${O}}[5m]))`, { decimals: 0, alerts: ['PosRelayOperatorReconcileErrors'] }))
    .withPanel(statPanel(ids, 'Reconciles/s', 'Reconciles per second over 5 minutes, all of the operator\'s controllers', `sum(rate(controller_runtime_reconcile_total{${O}}[5m]))`, { unit: 'ops' }))
    .withPanel(statPanel(ids, 'Relays managed', 'Relays the operator leads wants (desired slots of all its RelayPools)', `max(pos_relay_operator_relays{${O}, state="desired"})`))

    .withRow(row(ids, 'Reconciles'))
    .withPanel(ts(ids, 'Reconciles', 'Reconciles per second, by controller and result (success, error, requeue, requeue_after)', [[`sum by (controller, result) (rate(controller_runtime_reconcile_total{${O}}[${RATE}]))`, '{{controller}} {{result}}']], { unit: 'ops' }))
    .withPanel(ts(ids, 'Reconcile errors', 'Reconcile errors per second, by controller', [[`sum by (controller) (rate(controller_runtime_reconcile_errors_total{${O}}[${RATE}]))`, '{{controller}}']], { unit: 'ops', alerts: ['PosRelayOperatorReconcileErrors'] }))
    .withPanel(ts(ids, 'Reconcile duration', 'Reconcile time quantiles, by controller', [
      [`histogram_quantile(0.5, sum by (le, controller) (rate(controller_runtime_reconcile_time_seconds_bucket{${O}}[${RATE}])))`, 'p50 {{controller}}'],
      [`histogram_quantile(0.99, sum by (le, controller) (rate(controller_runtime_reconcile_time_seconds_bucket{${O}}[${RATE}])))`, 'p99 {{controller}}']
    ], { unit: 's' }))
    .withPanel(ts(ids, 'Work queue depth', 'Keys waiting, by queue', [[`sum by (name) (workqueue_depth{${O}})`, '{{name}}']]))
    .withPanel(ts(ids, 'Relays by state', 'Relays of the RelayPools the leader runs: desired (slots), ready (pods Ready), registered (listed in discovery). Ready below desired: pods Pending or crashing; registered below ready: Ready relays no client is told about', [[`max by (namespace, job, state) (pos_relay_operator_relays{${O}})`, '{{namespace}} {{state}}']], { alerts: ['PosRelayPoolBelowDesired', 'PosRelayReadyNotRegistered'] }))
    .withPanel(ts(ids, 'Leader', 'Which replica holds the Lease (1 = leader)', [[`max by (name, pod, instance) (leader_election_master_status{${O}})`, '{{pod}} {{instance}} {{name}}']], { alerts: ['PosRelayOperatorNoLeader'] }))
    .withPanel(ts(ids, 'Operator memory (RSS)', 'Resident memory of the operator processes', [[`process_resident_memory_bytes{${O}}`, '{{pod}} {{instance}}']], { span: 24, unit: 'bytes' }))
    .build()
}
