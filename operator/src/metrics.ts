/**
 * The operator's Prometheus metrics, on a Registry of its own, named after
 * controller-runtime and client-go where they fit.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** controller-runtime's reconcile-time buckets */
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60]
const QUEUE_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100]

export class OperatorMetrics {
  readonly registry = new Registry()
  readonly reconcileTotal: Counter<'controller' | 'result'>
  readonly reconcileErrors: Counter<'controller'>
  readonly reconcileTime: Histogram<'controller'>
  readonly activeWorkers: Gauge<'controller'>
  readonly maxConcurrentReconciles: Gauge<'controller'>
  readonly queueDepth: Gauge<'name' | 'controller'>
  readonly queueAdds: Counter<'name' | 'controller'>
  readonly queueRetries: Counter<'name' | 'controller'>
  readonly queueLatency: Histogram<'name' | 'controller'>
  readonly workDuration: Histogram<'name' | 'controller'>
  readonly leaderStatus: Gauge<'name'>
  readonly restRequests: Counter<'method' | 'code'>
  readonly relays: Gauge<'state'>
  readonly registryOps: Counter<'op' | 'result'>
  readonly informerRestarts: Counter<'informer' | 'reason'>
  readonly informerLastActivity: Gauge<'informer'>
  readonly events: Counter<'type' | 'result'>

  /** series exist (at 0) from the start, as controller-runtime does, so dashboards and alerts see them before the first event */
  initController (controller: string): void {
    for (const result of ['success', 'error', 'requeue', 'requeue_after']) this.reconcileTotal.inc({ controller, result }, 0)
    this.reconcileErrors.inc({ controller }, 0)
    this.reconcileTime.zero({ controller })
    this.activeWorkers.set({ controller }, 0)
    const q = { name: controller, controller }
    this.queueDepth.set(q, 0)
    this.queueAdds.inc(q, 0)
    this.queueRetries.inc(q, 0)
    this.queueLatency.zero(q)
    this.workDuration.zero(q)
  }

  constructor (opts: { defaultMetrics?: boolean } = {}) {
    const r = [this.registry]
    this.reconcileTotal = new Counter({ name: 'controller_runtime_reconcile_total', help: 'Total number of reconciliations per controller', labelNames: ['controller', 'result'], registers: r })
    this.reconcileErrors = new Counter({ name: 'controller_runtime_reconcile_errors_total', help: 'Total number of reconciliation errors per controller', labelNames: ['controller'], registers: r })
    this.reconcileTime = new Histogram({ name: 'controller_runtime_reconcile_time_seconds', help: 'Length of time per reconciliation per controller', labelNames: ['controller'], buckets: RECONCILE_BUCKETS, registers: r })
    this.activeWorkers = new Gauge({ name: 'controller_runtime_active_workers', help: 'Number of currently used workers per controller', labelNames: ['controller'], registers: r })
    this.maxConcurrentReconciles = new Gauge({ name: 'controller_runtime_max_concurrent_reconciles', help: 'Maximum number of concurrent reconciles per controller', labelNames: ['controller'], registers: r })
    this.queueDepth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames: ['name', 'controller'], registers: r })
    this.queueAdds = new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by workqueue', labelNames: ['name', 'controller'], registers: r })
    this.queueRetries = new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries handled by workqueue', labelNames: ['name', 'controller'], registers: r })
    this.queueLatency = new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'How long in seconds an item stays in workqueue before being requested', labelNames: ['name', 'controller'], buckets: QUEUE_BUCKETS, registers: r })
    this.workDuration = new Histogram({ name: 'workqueue_work_duration_seconds', help: 'How long in seconds processing an item from workqueue takes', labelNames: ['name', 'controller'], buckets: QUEUE_BUCKETS, registers: r })
    this.leaderStatus = new Gauge({ name: 'leader_election_master_status', help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. \'name\' is the string used to identify the lease', labelNames: ['name'], registers: r })
    this.restRequests = new Counter({ name: 'rest_client_requests_total', help: 'Number of HTTP requests to the Kubernetes API, partitioned by method and status code', labelNames: ['method', 'code'], registers: r })
    this.relays = new Gauge({ name: 'pos_relay_operator_relays', help: 'Relays of all RelayPools this operator leads: desired (slots), ready (pods Ready), registered (listed in the discovery registry)', labelNames: ['state'], registers: r })
    this.registryOps = new Counter({ name: 'pos_relay_operator_registry_operations_total', help: 'Discovery registry operations (register includes heartbeats)', labelNames: ['op', 'result'], registers: r })
    this.informerRestarts = new Counter({ name: 'pos_relay_operator_informer_restarts_total', help: 'List/watch restarts after an error, per informer', labelNames: ['informer', 'reason'], registers: r })
    this.informerLastActivity = new Gauge({ name: 'pos_relay_operator_informer_last_activity_timestamp_seconds', help: 'Unix time of the last list or watch event (or bookmark) per informer', labelNames: ['informer'], registers: r })
    this.events = new Counter({ name: 'pos_relay_operator_events_total', help: 'Kubernetes Events: created, series (count of a repeated event updated), dropped (rate limited or too many in flight), error (the API call failed)', labelNames: ['type', 'result'], registers: r })
    for (const state of ['desired', 'ready', 'registered']) this.relays.set({ state }, 0)
    for (const op of ['register', 'deregister']) for (const result of ['success', 'error']) this.registryOps.inc({ op, result }, 0)
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry })
  }
}
