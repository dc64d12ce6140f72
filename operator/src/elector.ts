/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's
 * semantics (tools/leaderelection): a candidate takes the Lease when it has no
 * holder or when the holder has not renewed it for leaseDuration, measured on
 * this process's clock from when this process last saw the record change (so
 * clock skew between machines does not matter); the leader renews every
 * retryPeriod and gives up when it could not renew for renewDeadline; updates
 * carry the resourceVersion, so two candidates cannot both win. On a clean
 * stop the leader releases the Lease (empty holder), so another replica takes
 * over within one retryPeriod instead of waiting out leaseDuration.
 */
import type { Logger } from '@pos-relay/shared'
import { isConflict, isNotFound, type KubeClient } from './kube.js'

export interface LeaseRecord {
  holderIdentity?: string
  leaseDurationSeconds?: number
  acquireTime?: string
  renewTime?: string
  leaseTransitions?: number
}

export interface LeaseLock {
  /** undefined when the Lease does not exist */
  get: () => Promise<{ record: LeaseRecord, resourceVersion: string } | undefined>
  /** fails (409) if it exists */
  create: (record: LeaseRecord) => Promise<void>
  /** fails (409) if resourceVersion is stale */
  update: (record: LeaseRecord, resourceVersion: string) => Promise<void>
  describe: () => string
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits */
export function microTime (ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z')
}

export class KubeLeaseLock implements LeaseLock {
  constructor (private readonly client: KubeClient, readonly namespace: string, readonly name: string, private readonly timeoutMs = 5000) {}

  private path (name?: string): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.namespace}/leases${name != null ? `/${name}` : ''}`
  }

  async get (): Promise<{ record: LeaseRecord, resourceVersion: string } | undefined> {
    try {
      const lease = await this.client.get<{ metadata: { resourceVersion: string }, spec?: LeaseRecord }>(this.path(this.name), { timeoutMs: this.timeoutMs })
      return { record: lease.spec ?? {}, resourceVersion: lease.metadata.resourceVersion }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw err
    }
  }

  async create (record: LeaseRecord): Promise<void> {
    await this.client.request('POST', this.path(), {
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.namespace }, spec: record },
      timeoutMs: this.timeoutMs
    })
  }

  async update (record: LeaseRecord, resourceVersion: string): Promise<void> {
    await this.client.request('PUT', this.path(this.name), {
      body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.name, namespace: this.namespace, resourceVersion }, spec: record },
      timeoutMs: this.timeoutMs
    })
  }

  describe (): string { return `${this.namespace}/${this.name}` }
}

export interface ElectorOptions {
  lock: LeaseLock
  identity: string
  /** default 15 s (controller-runtime) */
  leaseDurationMs?: number
  /** default 10 s */
  renewDeadlineMs?: number
  /** default 2 s */
  retryPeriodMs?: number
  onStartedLeading: () => void
  /** awaited before the Lease is released, so a successor never overlaps this leader's last work */
  onStoppedLeading: () => void | Promise<void>
  onNewLeader?: (identity: string) => void
  logger?: Logger
  /** injectable clock (ms) */
  now?: () => number
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

const defaultSleep = async (ms: number, signal: AbortSignal): Promise<void> => {
  await new Promise<void>((resolve) => {
    if (signal.aborted) { resolve(); return }
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(t); resolve() }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

export class LeaderElector {
  private observed: LeaseRecord | undefined
  private observedRaw = ''
  private observedTime = 0
  private leading = false
  private readonly leaseMs: number
  private readonly renewMs: number
  private readonly retryMs: number
  private readonly now: () => number
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>
  private lastLeader = ''

  constructor (private readonly opts: ElectorOptions) {
    this.leaseMs = opts.leaseDurationMs ?? 15_000
    this.renewMs = opts.renewDeadlineMs ?? 10_000
    this.retryMs = opts.retryPeriodMs ?? 2_000
    if (!(this.leaseMs > this.renewMs && this.renewMs > this.retryMs)) throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod')
    this.now = opts.now ?? Date.now
    this.sleep = opts.sleep ?? defaultSleep
  }

  get identity (): string { return this.opts.identity }
  isLeader (): boolean { return this.leading }
  /** the holder this process last observed */
  get leader (): string { return this.observed?.holderIdentity ?? '' }

  /**
   * Runs until `signal` aborts: acquire, lead (renewing), and after a lost
   * lease go back to acquiring. On abort, a leader releases the Lease.
   */
  async run (signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.acquire(signal)
      if (signal.aborted) break
      this.leading = true
      this.opts.logger?.info({ event: 'leader_elected', identity: this.opts.identity, lease: this.opts.lock.describe() }, 'became leader')
      try { this.opts.onStartedLeading() } catch (err: any) { this.opts.logger?.error({ err: err?.message }, 'onStartedLeading threw') }
      await this.renewLoop(signal)
      this.leading = false
      if (!signal.aborted) this.opts.logger?.warn({ event: 'leader_lost', identity: this.opts.identity, lease: this.opts.lock.describe() }, 'lost leadership; standing by as a candidate')
      try { await this.opts.onStoppedLeading() } catch (err: any) { this.opts.logger?.error({ err: err?.message }, 'onStoppedLeading threw') }
      if (signal.aborted) await this.release()
    }
  }

  private async acquire (signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) return
      // jitter like client-go (JitterFactor 1.2)
      await this.sleep(this.retryMs * (1 + Math.random() * 0.2), signal)
    }
  }

  private async renewLoop (signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const deadline = this.now() + this.renewMs
      let renewed = false
      while (!signal.aborted && this.now() < deadline) {
        if (await this.tryAcquireOrRenew()) { renewed = true; break }
        await this.sleep(Math.min(this.retryMs, Math.max(0, deadline - this.now())), signal)
      }
      if (signal.aborted) return
      if (!renewed) return
      await this.sleep(this.retryMs, signal)
    }
  }

  /** one attempt; true when this process holds the Lease afterwards */
  async tryAcquireOrRenew (): Promise<boolean> {
    const now = this.now()
    const record: LeaseRecord = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0
    }
    let current: { record: LeaseRecord, resourceVersion: string } | undefined
    try {
      current = await this.opts.lock.get()
    } catch (err: any) {
      this.opts.logger?.warn({ event: 'lease_get_failed', err: err?.message }, 'cannot read the Lease')
      return false
    }
    if (current == null) {
      try {
        await this.opts.lock.create(record)
      } catch (err: any) {
        if (!isConflict(err)) this.opts.logger?.warn({ event: 'lease_create_failed', err: err?.message }, 'cannot create the Lease')
        return false
      }
      this.observe(record, '', now)
      return true
    }
    const raw = JSON.stringify(current.record)
    if (raw !== this.observedRaw) this.observe(current.record, current.resourceVersion, now)
    const holder = current.record.holderIdentity ?? ''
    const iHold = holder === this.opts.identity
    if (holder !== '' && !iHold && this.observedTime + this.leaseMs > now) return false
    if (iHold) {
      record.acquireTime = current.record.acquireTime ?? record.acquireTime
      record.leaseTransitions = current.record.leaseTransitions ?? 0
    } else {
      record.leaseTransitions = (current.record.leaseTransitions ?? 0) + 1
    }
    try {
      await this.opts.lock.update(record, current.resourceVersion)
    } catch (err: any) {
      if (!isConflict(err)) this.opts.logger?.warn({ event: 'lease_update_failed', err: err?.message }, 'cannot update the Lease')
      return false
    }
    this.observe(record, '', now)
    return true
  }

  /** gives the Lease up (empty holder) if this process holds it; best effort */
  async release (): Promise<boolean> {
    if (this.observed?.holderIdentity !== this.opts.identity) return false
    try {
      const current = await this.opts.lock.get()
      if (current == null || current.record.holderIdentity !== this.opts.identity) return false
      const now = this.now()
      await this.opts.lock.update({
        holderIdentity: '',
        leaseDurationSeconds: 1,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: current.record.leaseTransitions ?? 0
      }, current.resourceVersion)
      this.observed = undefined
      this.observedRaw = ''
      this.opts.logger?.info({ event: 'lease_released', identity: this.opts.identity }, 'released the Lease')
      return true
    } catch (err: any) {
      this.opts.logger?.warn({ event: 'lease_release_failed', err: err?.message }, 'could not release the Lease')
      return false
    }
  }

  private observe (record: LeaseRecord, _rv: string, now: number): void {
    this.observed = record
    this.observedRaw = JSON.stringify(record)
    this.observedTime = now
    const holder = record.holderIdentity ?? ''
    if (holder !== this.lastLeader) {
      this.lastLeader = holder
      if (holder !== '') this.opts.onNewLeader?.(holder)
    }
  }
}
