/**
 * The operator process: informers (RelayPools, relay pods, identity Secrets,
 * Nodes) feed a de-duplicating work queue of pool keys; while this replica
 * holds the Lease, workers reconcile pools and the registry heartbeats.
 *
 * reconcile(pool) = observe (informer caches + registry state) →
 * computeDesired (pure) → apply the difference: registry first (the fastest
 * way to stop sending clients to a relay that goes away), then identity
 * Secrets, pods (server-side apply with one field manager; deletions with a
 * uid precondition), and the status through the status subresource when it
 * changed.
 */
import { hostname } from 'node:os'
import { createRedisStore } from '@pos-relay/discovery'
import { signRegistration, type HttpServer, type Logger } from '@pos-relay/shared'
import {
  API_VERSION, COMPONENT_IDENTITY, DEFAULT_TTL_SECONDS, FIELD_MANAGER, FINALIZER, KIND, LABELS,
  MANAGED_SELECTOR, corePath, keyOf, poolsPath, type Node, type Pod, type RelayPool, type RelayPoolStatus, type Secret
} from './api.js'
import { computeDesired, statusEqual } from './desired.js'
import { isPodReady, isTerminating, slotOf } from './pod-state.js'
import { EventRecorder, type EventInput } from './events.js'
import { KubeLeaseLock, LeaderElector } from './elector.js'
import { applyChildren } from './children.js'
import { Informer, stripManagedFields } from './informer.js'
import { KubeClient, loadKubeConfig } from './kube.js'
import { registryId } from './manifests.js'
import { authEvent, conditionEvent, nodeFingerprint, poolKeyOf, poolRef, registryTransitionEvent } from './pool-events.js'
import { done, FINALIZER_RETRY_MS, requeueAfter, SECRET_RETRY_MS, type ReconcileResult } from './reconcile-result.js'
import { SecretValues } from './secret-values.js'
import { AuthSecrets } from './auth-secrets.js'
import { removeFinalizer } from './finalizer.js'
import { RelayKeys } from './relay-keys.js'
import { failoverMs, type OperatorOptions } from './operator-options.js'
import { OperatorMetrics } from './metrics.js'
import { startOperatorHttp } from './operator-http.js'
import { Registry } from './registry.js'
import { runWorker } from './reconcile-worker.js'
import { exponentialRateLimiter, WorkQueue } from './workqueue.js'

export const CONTROLLER_NAME = 'relaypool'

const SECRET_SELECTOR = `${LABELS.managedBy}=${FIELD_MANAGER},${LABELS.component}=${COMPONENT_IDENTITY}`

export type { OperatorOptions }

export class Operator {
  readonly metrics = new OperatorMetrics()
  readonly client: KubeClient
  readonly pools: Informer<RelayPool>
  readonly pods: Informer<Pod>
  readonly secrets: Informer<Secret>
  readonly nodes: Informer<Node>
  readonly registry: Registry
  readonly identity: string
  readonly events: EventRecorder
  private readonly log: Logger
  private queue: WorkQueue
  private workers: Array<Promise<void>> = []
  private elector: LeaderElector | undefined
  private leading = false
  private readonly stopCtl = new AbortController()
  private electorRun: Promise<void> | undefined
  private http: HttpServer | undefined
  private resyncTimer: NodeJS.Timeout | undefined
  /** last status this leader wrote per pool (the cache lags behind our own writes) */
  private readonly written = new Map<string, { uid: string, status: RelayPoolStatus }>()
  private readonly poolCounts = new Map<string, { desired: number, ready: number }>()
  private readonly deletingSince = new Map<string, number>()
  private readonly secretValues: SecretValues
  private readonly authSecrets: AuthSecrets
  /** pool key → limits ConfigMap data last applied (children.ts) */
  private readonly appliedLimits = new Map<string, string>()
  /** each relay's own key (from its identity Secret): registry writes are signed with it */
  private readonly relayKeys: RelayKeys
  private readonly ttlWarned = new Set<string>()
  private stopped = false
  readonly ready: Promise<void>
  private markReady!: () => void
  metricsAddress: { host: string, port: number } | undefined

  constructor (readonly opts: OperatorOptions) {
    this.log = opts.logger
    const kc = typeof opts.kubeconfig === 'object' ? opts.kubeconfig : loadKubeConfig(opts.kubeconfig)
    this.client = new KubeClient(kc, { onRequest: (method, code) => { this.metrics.restRequests.inc({ method, code }) } })
    this.secretValues = new SecretValues(this.client, opts.redisUrl)
    this.authSecrets = new AuthSecrets(this.client)
    this.metrics.initController(CONTROLLER_NAME)
    this.metrics.leaderStatus.set({ name: opts.leaseName ?? 'pos-relay-operator' }, 0)
    this.identity = opts.identity ?? `${hostname()}_${process.pid}`
    const ns = opts.namespace ?? ''
    const common = {
      logger: this.log,
      relistMs: opts.relistMs,
      watchTimeoutSeconds: opts.watchTimeoutSeconds,
      transform: stripManagedFields,
      onRestart: (name: string, reason: string) => { this.metrics.informerRestarts.inc({ informer: name, reason }) }
    }
    this.pools = new Informer<RelayPool>(this.client, { ...common, name: 'relaypools', path: poolsPath(ns) })
    this.pods = new Informer<Pod>(this.client, { ...common, name: 'pods', path: corePath('pods', ns), labelSelector: MANAGED_SELECTOR })
    this.secrets = new Informer<Secret>(this.client, { ...common, name: 'secrets', path: corePath('secrets', ns), labelSelector: SECRET_SELECTOR })
    this.nodes = new Informer<Node>(this.client, { ...common, name: 'nodes', path: corePath('nodes') })
    this.relayKeys = new RelayKeys(() => this.secrets.list())
    this.queue = this.newQueue()
    this.events = new EventRecorder({
      client: this.client,
      instance: this.identity,
      logger: this.log,
      onResult: (type, result) => { this.metrics.events.inc({ type, result }) }
    })
    this.registry = new Registry({
      storeFor: opts.storeFor ?? ((url) => createRedisStore({ url, logger: this.log, commandTimeoutMs: 1000 })),
      logger: this.log,
      guard: (reg) => {
        const pod = this.pods.get(`${reg.meta.namespace}/${reg.meta.pod}`)
        return pod != null && isPodReady(pod)
      },
      // each relay's registrations and deletions are signed by its own key (from its slot's identity Secret)
      sign: async (op, fields) => {
        const key = this.relayKeys.get(fields.peer_id)
        return key == null ? undefined : await signRegistration(key, { op, ...fields })
      },
      onPoolChanged: (key) => { if (this.leading) this.queue.add(key) },
      onTransition: (key, t) => { if (this.leading) this.recordFor(key, registryTransitionEvent(t)) },
      metrics: { operation: (op, result) => { this.metrics.registryOps.inc({ op, result }) } }
    })
    this.ready = new Promise((resolve) => { this.markReady = resolve })
    this.installHandlers()
  }

  private newQueue (): WorkQueue {
    const labels = { name: CONTROLLER_NAME, controller: CONTROLLER_NAME }
    return new WorkQueue(CONTROLLER_NAME, exponentialRateLimiter(100, 60_000), {
      depth: (n) => { this.metrics.queueDepth.set(labels, n) },
      add: () => { this.metrics.queueAdds.inc(labels) },
      retry: () => { this.metrics.queueRetries.inc(labels) },
      queueLatency: (s) => { this.metrics.queueLatency.observe(labels, s) },
      workDuration: (s) => { this.metrics.workDuration.observe(labels, s) }
    })
  }

  isLeader (): boolean { return this.leading }

  // ------------------------------------------------------------ event handlers

  private enqueue (key: string): void { if (this.leading) this.queue.add(key) }
  private enqueueAll (): void { for (const p of this.pools.list()) this.enqueue(keyOf(p)) }

  private installHandlers (): void {
    this.pools.on({
      add: (p) => { this.enqueue(keyOf(p)) },
      update: (oldP, p) => {
        // our own status writes only bump resourceVersion; skip them
        if (oldP.metadata.generation !== p.metadata.generation ||
          oldP.metadata.deletionTimestamp !== p.metadata.deletionTimestamp ||
          JSON.stringify(oldP.metadata.finalizers) !== JSON.stringify(p.metadata.finalizers) ||
          oldP.metadata.uid !== p.metadata.uid ||
          !this.written.has(keyOf(p))) this.enqueue(keyOf(p))
      },
      delete: (p) => { this.enqueue(keyOf(p)) }
    })
    const onPod = (pod: Pod, gone: boolean): void => {
      const key = poolKeyOf(pod)
      if (key == null) return
      // fast path: a relay that is no longer Ready, is terminating or is gone leaves the registry now
      if (this.leading && (gone || isTerminating(pod) || !isPodReady(pod))) {
        const slot = slotOf(pod)
        if (slot != null) this.registry.revoke(key, registryId(pod.metadata.namespace ?? '', pod.metadata.labels![LABELS.pool]!, slot), gone || isTerminating(pod))
      }
      this.enqueue(key)
    }
    this.pods.on({
      add: (p) => { onPod(p, false) },
      update: (_o, p) => { onPod(p, false) },
      delete: (p) => {
        onPod(p, true)
        // a freed node may unblock pools waiting for a free hostPort
        for (const pool of this.pools.list()) {
          if (pool.status?.conditions?.some((c) => c.type === 'HostPortConflict' && c.status === 'True') === true) this.enqueue(keyOf(pool))
        }
      }
    })
    const onSecret = (s: Secret): void => { const key = poolKeyOf(s); if (key != null) this.enqueue(key) }
    this.secrets.on({ add: onSecret, update: (_o, s) => { onSecret(s) }, delete: onSecret })
    this.nodes.on({
      add: () => { this.enqueueAll() },
      update: (o, n) => { if (nodeFingerprint(o) !== nodeFingerprint(n)) this.enqueueAll() },
      delete: () => { this.enqueueAll() }
    })
  }

  // ------------------------------------------------------------ lifecycle

  async start (): Promise<void> {
    await this.startHttp()
    for (const inf of [this.pools, this.pods, this.secrets, this.nodes]) inf.start()
    const synced = Promise.all([this.pools, this.pods, this.secrets, this.nodes].map(async (i) => await i.waitForSync(this.stopCtl.signal)))
    void synced.then(() => {
      if (this.stopped) return
      this.log.info({ event: 'caches_synced', pools: this.pools.size, pods: this.pods.size, nodes: this.nodes.size }, 'informer caches synced')
      this.markReady()
      this.startElection()
    })
  }

  private startElection (): void {
    const leaseName = this.opts.leaseName ?? 'pos-relay-operator'
    if (this.opts.leaderElect === false) {
      this.metrics.leaderStatus.set({ name: leaseName }, 1)
      this.startLeading()
      return
    }
    const ns = this.opts.leaseNamespace ?? 'default'
    this.metrics.leaderStatus.set({ name: leaseName }, 0)
    this.elector = new LeaderElector({
      lock: new KubeLeaseLock(this.client, ns, leaseName),
      identity: this.identity,
      leaseDurationMs: this.opts.leaseDurationMs,
      renewDeadlineMs: this.opts.renewDeadlineMs,
      retryPeriodMs: this.opts.retryPeriodMs,
      logger: this.log,
      onStartedLeading: () => { this.metrics.leaderStatus.set({ name: leaseName }, 1); this.startLeading() },
      onStoppedLeading: async () => { this.metrics.leaderStatus.set({ name: leaseName }, 0); await this.stopLeading() },
      onNewLeader: (id) => { this.log.info({ event: 'leader_observed', leader: id, me: this.identity }, 'current leader') }
    })
    this.electorRun = this.elector.run(this.stopCtl.signal)
  }

  private startLeading (): void {
    if (this.stopped || this.leading) return
    this.leading = true
    this.written.clear()
    this.queue = this.newQueue()
    this.registry.start()
    const n = Math.max(1, this.opts.workers ?? 4)
    this.metrics.maxConcurrentReconciles.set({ controller: CONTROLLER_NAME }, n)
    this.workers = Array.from({ length: n }, async () => { await this.worker(this.queue) })
    this.enqueueAll()
    // a resync also re-applies each limits ConfigMap (one patch per pool), in case someone deleted or edited it
    this.resyncTimer = setInterval(() => { this.appliedLimits.clear(); this.enqueueAll() }, this.opts.resyncMs ?? 300_000)
    this.resyncTimer.unref()
    this.log.info({ event: 'controller_started', workers: n, pools: this.pools.size }, 'reconciling RelayPools')
  }

  /** stops reconciling and heartbeating; deregisters nothing (a successor takes over the registry) */
  private async stopLeading (): Promise<void> {
    if (!this.leading) return
    this.leading = false
    if (this.resyncTimer != null) clearInterval(this.resyncTimer)
    this.queue.shutDown()
    await Promise.allSettled(this.workers)
    this.workers = []
    await this.registry.reset()
    this.poolCounts.clear()
    this.log.info({ event: 'controller_stopped' }, 'stopped reconciling')
  }

  /** SIGTERM: stop workers, release the Lease, stop informers; deregisters nothing */
  async stop (): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.stopCtl.abort()
    if (this.electorRun != null) await this.electorRun
    else await this.stopLeading()
    await Promise.all([this.pools, this.pods, this.secrets, this.nodes].map(async (i) => { await i.stop() }))
    await this.registry.reset()
    await this.events.close()
    await this.http?.close()
    this.client.close()
    this.log.info({ event: 'operator_stopped' }, 'operator stopped')
  }

  // ------------------------------------------------------------ http

  private async startHttp (): Promise<void> {
    if (this.opts.metricsPort == null || this.opts.metricsPort < 0) return
    const informers = [this.pools, this.pods, this.secrets, this.nodes]
    const { server, address } = await startOperatorHttp({
      port: this.opts.metricsPort,
      host: this.opts.metricsHost ?? '0.0.0.0',
      metrics: this.metrics.registry,
      beforeScrape: () => { this.refreshGauges() },
      informers,
      stopped: () => this.stopped,
      leading: () => this.leading
    })
    this.http = server
    this.metricsAddress = address
  }

  private refreshGauges (): void {
    let desired = 0
    let ready = 0
    for (const c of this.poolCounts.values()) { desired += c.desired; ready += c.ready }
    this.metrics.relays.set({ state: 'desired' }, desired)
    this.metrics.relays.set({ state: 'ready' }, ready)
    this.metrics.relays.set({ state: 'registered' }, this.leading ? this.registry.counts().registered : 0)
    this.metrics.activeWorkers.set({ controller: CONTROLLER_NAME }, this.queue.processingCount)
    for (const i of [this.pools, this.pods, this.secrets, this.nodes]) this.metrics.informerLastActivity.set({ informer: i.name }, i.lastActivity / 1000)
  }

  // ------------------------------------------------------------ workers

  private async worker (queue: WorkQueue): Promise<void> {
    await runWorker(queue, {
      controller: CONTROLLER_NAME,
      reconcile: async (key) => await this.reconcile(key),
      metrics: this.metrics,
      log: this.log,
      // the same error on every retry continues one Event's series (see events.ts)
      onError: (key, err) => { this.recordFor(key, { type: 'Warning', reason: 'ReconcileError', action: 'Reconcile', note: String(err?.message ?? err) }) }
    })
  }

  // ------------------------------------------------------------ reconcile

  async reconcile (key: string): Promise<ReconcileResult> {
    const cached = this.pools.get(key)
    if (cached == null) {
      // the pool is gone (its finalizer already cleaned the registry): stop heartbeating its relays
      await this.registry.setPool(key, null)
      this.written.delete(key)
      this.poolCounts.delete(key)
      this.deletingSince.delete(key)
      this.appliedLimits.delete(key)
      return done('PoolGone')
    }
    if (cached.metadata.deletionTimestamp != null) return await this.finalize(key, cached)
    const ns = cached.metadata.namespace ?? 'default'
    const name = cached.metadata.name

    if (!(cached.metadata.finalizers ?? []).includes(FINALIZER)) {
      await this.client.apply(`${poolsPath(ns)}/${name}`, { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: ns, finalizers: [FINALIZER] } })
    }

    const written = this.written.get(key)
    const pool: RelayPool = written != null && written.uid === cached.metadata.uid ? { ...cached, status: written.status } : cached
    const redis = await this.secretValues.redisUrl(pool)
    const authProblem = await this.authSecrets.problem(pool)
    const ttlSeconds = pool.spec?.discovery?.ttlSeconds ?? this.opts.registryTtlSeconds ?? DEFAULT_TTL_SECONDS
    this.warnShortTtl(key, ttlSeconds)
    const pods = this.pods.list().filter((p) => p.metadata.namespace === ns && p.metadata.labels?.[LABELS.pool] === name)
    const desired = computeDesired({
      pool,
      pods,
      secrets: this.secrets.list().filter((s) => s.metadata.namespace === ns && s.metadata.labels?.[LABELS.pool] === name),
      nodes: this.nodes.list(),
      otherRelayPods: this.pods.list().filter((p) => !(p.metadata.namespace === ns && p.metadata.labels?.[LABELS.pool] === name)),
      registry: {
        configured: redis.url != null,
        ...(redis.error != null ? { error: redis.error } : this.registry.poolError(key) != null ? { error: this.registry.poolError(key) } : {}),
        registered: this.registry.registeredIds(key)
      },
      defaults: { image: this.opts.relayImage, imagePullPolicy: this.opts.relayImagePullPolicy, allowedPrivilegedHostPorts: this.opts.allowedPrivilegedHostPorts, podSecurityContext: this.opts.relayPodSecurityContext, containerSecurityContext: this.opts.relayContainerSecurityContext, scrapeAnnotations: this.opts.relayScrapeAnnotations },
      ...(authProblem != null ? { authProblem } : {}),
      now: Date.now()
    })
    this.poolCounts.set(key, { desired: desired.status.desiredRelays ?? 0, ready: desired.status.readyRelays ?? 0 })

    // 1. registry: wanted entries, and ids of this pool's relays that exist but must not be listed
    const wantedIds = new Set(desired.registrations.map((r) => r.id))
    const absent = pods.map((p) => slotOf(p)).filter((s): s is number => s != null).map((s) => registryId(ns, name, s)).filter((id) => !wantedIds.has(id))
    await this.registry.setPool(key, { url: redis.url, error: redis.error, ttlMs: ttlSeconds * 1000, registrations: desired.registrations, absent: [...new Set(absent)] })

    // 2. children
    const errors: Error[] = []
    errors.push(...await applyChildren({ client: this.client, log: this.log, events: this.events, appliedLimits: this.appliedLimits }, key, pool, desired))
    for (const event of [conditionEvent(pool, desired), authEvent(pool, desired)]) if (event != null) this.events.record(event)

    // 3. status (only when it changed)
    if (desired.statusChanged) {
      const status = desired.status
      await this.client.apply(`${poolsPath(ns)}/${name}/status`, { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace: ns }, status })
      this.written.set(key, { uid: cached.metadata.uid ?? '', status })
    } else if (written == null && cached.status != null && statusEqual(cached.status, desired.status)) {
      this.written.set(key, { uid: cached.metadata.uid ?? '', status: cached.status })
    }
    if (errors.length > 0) throw errors.length === 1 ? errors[0]! : new AggregateError(errors, errors.map((e) => e.message).join('; '))
    // Secret missing or unreadable: a configuration problem, shown in Degraded; look again soon, without growing backoff
    if (redis.error != null) return requeueAfter(SECRET_RETRY_MS, 'RegistrySecretUnreadable')
    // the auth Secrets are not watched (the informer sees identity Secrets only): look again soon
    if (authProblem != null) return requeueAfter(SECRET_RETRY_MS, 'AuthSecretInvalid')
    // Redis unreachable: the registry retries on its own and re-queues the pool when it recovers
    if (this.registry.poolError(key) != null) throw new Error(`registry: ${this.registry.poolError(key)}`)
    return done('Reconciled')
  }

  /** warns once per pool when its TTL is too short to survive a leader failover (see failoverMs) */
  private warnShortTtl (key: string, ttlSeconds: number): void {
    if (this.opts.leaderElect === false || this.ttlWarned.has(key)) return
    const failover = failoverMs(this.opts)
    if ((ttlSeconds * 1000 * 2) / 3 > failover) return
    this.ttlWarned.add(key)
    this.log.warn({ event: 'registry_ttl_short', pool: key, ttl_seconds: ttlSeconds, failover_ms: failover },
      'discovery.ttlSeconds is too short to keep relays listed through a leader crash: raise it above 1.5 × (lease duration + 1.2 × retry period + 1 s)')
  }

  /**
   * A pool being deleted: stop heartbeating, remove its relays from the
   * registry, then remove the finalizer. If the registry stays unreachable for
   * longer than the TTL, the entries have expired on their own (nobody renews
   * them), so the finalizer is removed anyway rather than blocking forever.
   */
  private async finalize (key: string, pool: RelayPool): Promise<ReconcileResult> {
    const ns = pool.metadata.namespace ?? 'default'
    const name = pool.metadata.name
    const index = (pool.metadata.finalizers ?? []).indexOf(FINALIZER)
    if (index === -1) { await this.registry.setPool(key, null); return done('NoFinalizer') }
    const since = this.deletingSince.get(key) ?? Date.now()
    this.deletingSince.set(key, since)
    const ttlMs = (pool.spec?.discovery?.ttlSeconds ?? this.opts.registryTtlSeconds ?? DEFAULT_TTL_SECONDS) * 1000
    const redis = await this.secretValues.redisUrl(pool)
    let cleanup: Pick<EventInput, 'type' | 'reason' | 'note'>
    try {
      const removed = await this.registry.cleanupPool(key, redis.url, ns, name)
      this.log.info({ event: 'pool_registry_cleaned', pool: key, removed }, 'deregistered the pool\'s relays')
      cleanup = { type: 'Normal', reason: 'RegistryCleanedUp', note: `Removed ${removed} relay${removed === 1 ? '' : 's'} of the pool from discovery; finalizer ${FINALIZER} removed` }
    } catch (err: any) {
      if (Date.now() - since < ttlMs + 5000) throw err
      this.log.warn({ event: 'pool_registry_cleanup_skipped', pool: key, err: err?.message }, 'registry unreachable for longer than the TTL: its entries have expired; removing the finalizer')
      cleanup = { type: 'Warning', reason: 'RegistryCleanupSkipped', note: `The discovery registry stayed unreachable for longer than the TTL (its entries have expired on their own): ${err?.message ?? err}; finalizer ${FINALIZER} removed` }
    }
    const removed = await removeFinalizer(this.client, pool, index)
    if (removed !== 'removed') return removed === 'gone' ? done('PoolGone') : requeueAfter(FINALIZER_RETRY_MS, 'FinalizersMoved')
    this.deletingSince.delete(key)
    this.written.delete(key)
    this.poolCounts.delete(key)
    this.log.info({ event: 'finalizer_removed', pool: key }, 'finalizer removed')
    this.events.record({ regarding: poolRef(pool), action: 'Finalize', ...cleanup })
    return done('Finalized')
  }

  /** an Event about the pool `key`, when the pool is still known */
  private recordFor (key: string, e: Omit<EventInput, 'regarding'>): void {
    const pool = this.pools.get(key)
    if (pool != null) this.events.record({ regarding: poolRef(pool), ...e })
  }
}
