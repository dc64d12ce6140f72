/**
 * Keeps the discovery registry (Redis, through @pos-relay/discovery's store)
 * equal to the Ready relays the reconciler wants listed.
 *
 * - `setPool` takes a pool's wanted entries after each reconcile: new or
 *   changed entries are registered, entries no longer wanted and the ids of the
 *   pool's relays that are known to be unhealthy are deregistered, at once.
 * - `revoke` is the fast path used by the pod informer: a relay that turned
 *   not-Ready, started terminating or was deleted is deregistered without
 *   waiting for a reconcile.
 * - Heartbeats refresh every wanted entry when a third of its TTL has passed.
 * - Operations on one id are serialised (a revoke issued while a register is
 *   in flight runs after it), and just before every register a guard checks
 *   the informer cache, so a heartbeat or a late reconcile can never
 *   re-register a relay that has meanwhile become unhealthy.
 * - Nothing is ever deregistered because of what this process does not know:
 *   a fresh leader starts empty, registers what it observes as Ready and
 *   deregisters only relays it observes as unhealthy; `reset()` (lost
 *   leadership, shutdown) forgets everything and deregisters nothing. Entries
 *   of relays that vanished while no leader ran expire by their TTL.
 */
import type { RelayStore } from '@pos-relay/discovery'
import type { Logger } from '@pos-relay/shared'
import { RegistrySigner, type SignRegistration } from './registry-signer.js'
import type { Registration } from './desired.js'

export interface PoolTarget {
  /** Redis URL; undefined when none could be resolved */
  url?: string
  /** why there is no URL */
  error?: string
  ttlMs: number
  registrations: Registration[]
  /** ids of this pool's relays that exist but must not be listed */
  absent: string[]
}

export interface RegistryMetrics {
  operation?: (op: 'register' | 'deregister', result: 'success' | 'error') => void
}

export interface RegistryOptions {
  storeFor: (url: string) => RelayStore
  logger?: Logger
  now?: () => number
  /** checked right before each register; false → deregister instead */
  guard?: (reg: Registration) => boolean
  /** a pool's registered set or error changed (to refresh its status) */
  onPoolChanged?: (poolKey: string) => void
  /**
   * A relay was listed with new content (first registration by this process,
   * or a changed address or key), or a relay was removed from the registry.
   * Heartbeats and retries of the same content are not transitions.
   */
  onTransition?: (poolKey: string, t: RegistryTransition) => void
  metrics?: RegistryMetrics
  /** signs registrations and deletions with the relay's own key (see SignRegistration) */
  sign?: SignRegistration
  /** heartbeat scheduler tick; default 500 ms */
  tickMs?: number
  /** parallel registry operations per tick; default 32 */
  concurrency?: number
}

export type RegistryTransition =
  | { op: 'registered', registration: Registration }
  /** `registration`: what this process had listed, when it knows */
  | { op: 'deregistered', id: string, registration?: Registration }

interface Entry {
  poolKey: string
  url: string
  id: string
  ttlMs: number
  desired?: Registration
  desiredJson?: string
  /** content of the last successful register */
  appliedJson?: string
  registeredAt: number
  /** last op succeeded in deregistering (or nothing to do) */
  absent: boolean
  error?: string
  failures: number
  nextAttemptAt: number
}

const entryKey = (url: string, id: string): string => `${url}\u0000${id}`

export class Registry {
  private readonly entries = new Map<string, Entry>()
  private readonly pools = new Map<string, { url?: string, error?: string, keys: Set<string> }>()
  private readonly stores = new Map<string, RelayStore>()
  private readonly chains = new Map<string, Promise<void>>()
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private generation = 0
  private readonly now: () => number
  /** pools being cleaned up → entries setPool deregistered meanwhile */
  private readonly removedDuringCleanup = new Map<string, number>()
  private readonly signer: RegistrySigner

  constructor (private readonly opts: RegistryOptions) {
    this.now = opts.now ?? Date.now
    this.signer = new RegistrySigner(opts.sign)
  }

  start (): void {
    if (this.timer != null) return
    this.timer = setInterval(() => { void this.tick() }, this.opts.tickMs ?? 500)
    this.timer.unref()
  }

  /** stop heartbeats and forget all state; deregisters nothing */
  async reset (): Promise<void> {
    if (this.timer != null) clearInterval(this.timer)
    this.timer = undefined
    this.generation++
    await Promise.allSettled([...this.chains.values()])
    this.entries.clear()
    this.pools.clear()
    this.chains.clear()
    const stores = [...this.stores.values()]
    this.stores.clear()
    await Promise.allSettled(stores.map(async (s) => { await s.close() }))
  }

  private store (url: string): RelayStore {
    let s = this.stores.get(url)
    if (s == null) { s = this.opts.storeFor(url); this.stores.set(url, s) }
    return s
  }

  /** serialises operations per entry */
  private async locked (key: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.chains.get(key) ?? Promise.resolve()
    const next = prev.then(fn, fn)
    const tail = next.catch(() => {})
    this.chains.set(key, tail)
    try { await next } finally { if (this.chains.get(key) === tail) this.chains.delete(key) }
  }

  /**
   * Makes the registry match `target` for the pool (null: the pool is gone, or
   * is being deleted: stop heartbeating and deregister what this process
   * registered). Never throws; failures are recorded and retried by the
   * heartbeat loop, and reported through `poolError`.
   */
  async setPool (poolKey: string, target: PoolTarget | null): Promise<void> {
    const gen = this.generation
    const pool = this.pools.get(poolKey) ?? { keys: new Set<string>() }
    this.pools.set(poolKey, pool)
    const before = this.snapshot(poolKey)
    const wanted = new Set<string>()
    if (target?.url != null) {
      for (const reg of target.registrations) {
        const key = entryKey(target.url, reg.id)
        const e = this.entries.get(key) ?? this.newEntry(poolKey, target.url, reg.id, target.ttlMs, true)
        e.poolKey = poolKey
        e.ttlMs = target.ttlMs
        const json = JSON.stringify(reg)
        if (e.desiredJson !== json) { e.desired = reg; e.desiredJson = json; e.nextAttemptAt = 0; e.failures = 0 }
        this.entries.set(key, e)
        wanted.add(key)
      }
      for (const id of target.absent) {
        const key = entryKey(target.url, id)
        if (wanted.has(key)) continue
        // unknown to this process: deregister once (the relay is observed unhealthy)
        const e = this.entries.get(key) ?? this.newEntry(poolKey, target.url, id, target.ttlMs, false)
        this.unwant(e)
        this.entries.set(key, e)
        wanted.add(key)
      }
    }
    const keys = new Set(wanted)
    for (const key of pool.keys) {
      if (wanted.has(key)) continue
      const e = this.entries.get(key)
      if (e == null) continue
      this.unwant(e)
      if (e.absent) this.entries.delete(key)
      else keys.add(key) // still to deregister
    }
    pool.url = target?.url
    pool.error = target?.error
    pool.keys = keys
    await Promise.all([...keys].map(async (key) => { await this.syncEntry(key, gen) }))
    if (target == null && [...pool.keys].every((k) => this.entries.get(k)?.absent !== false)) {
      for (const k of pool.keys) this.entries.delete(k)
      this.pools.delete(poolKey)
    }
    this.notifyIfChanged(poolKey, before)
    await this.closeUnusedStores()
  }

  /**
   * Closes the Redis connection of each URL that no pool and no entry uses any
   * more (the pool moved to another Secret, or is gone): one connection per
   * URL ever seen would otherwise stay open for the operator's lifetime.
   */
  private async closeUnusedStores (): Promise<void> {
    const used = new Set<string>()
    for (const p of this.pools.values()) if (p.url != null) used.add(p.url)
    // an entry known absent with nothing desired has no more work on its URL
    for (const e of this.entries.values()) if (e.desired != null || !e.absent) used.add(e.url)
    for (const [url, store] of [...this.stores]) {
      if (used.has(url)) continue
      this.stores.delete(url)
      await store.close().catch(() => {})
    }
  }

  /** the entry must not be listed: deregister it unless it is known to be absent */
  private unwant (e: Entry): void {
    if (e.desired != null || e.appliedJson != null) { e.absent = false; e.nextAttemptAt = 0; e.failures = 0 }
    e.desired = undefined
    e.desiredJson = undefined
  }

  /**
   * Fast path: deregister `id` now (the relay is no longer healthy). Entries
   * this process registered are always removed; `evenIfUnknown` also removes
   * one it never saw (a relay going away right after a leader change, before
   * its pool was reconciled), at the cost of a Redis write for a relay that may
   * never have been listed.
   */
  revoke (poolKey: string, id: string, evenIfUnknown = false): void {
    const pool = this.pools.get(poolKey)
    if (pool?.url == null) return
    const key = entryKey(pool.url, id)
    const known = this.entries.get(key)
    if (known == null && !evenIfUnknown) return
    const e = known ?? this.newEntry(poolKey, pool.url, id, 30_000, false)
    if (e.desired == null && e.absent) return
    e.desired = undefined
    e.desiredJson = undefined
    e.absent = false
    e.nextAttemptAt = 0
    this.entries.set(key, e)
    pool.keys.add(key)
    const before = this.snapshot(poolKey)
    const gen = this.generation
    void this.syncEntry(key, gen).then(() => { this.notifyIfChanged(poolKey, before) })
  }

  /** ids of the pool whose wanted content is registered and not expired */
  registeredIds (poolKey: string): Set<string> {
    const out = new Set<string>()
    const pool = this.pools.get(poolKey)
    if (pool == null) return out
    const t = this.now()
    for (const key of pool.keys) {
      const e = this.entries.get(key)
      if (e?.desired != null && e.appliedJson === e.desiredJson && e.error == null && e.registeredAt + e.ttlMs > t) out.add(e.id)
    }
    return out
  }

  poolError (poolKey: string): string | undefined {
    const pool = this.pools.get(poolKey)
    if (pool == null) return undefined
    if (pool.url == null && pool.error != null) return pool.error
    for (const key of pool.keys) {
      const err = this.entries.get(key)?.error
      if (err != null) return err
    }
    return undefined
  }

  /** every entry currently wanted (for metrics) */
  counts (): { wanted: number, registered: number } {
    let wanted = 0
    let registered = 0
    const t = this.now()
    for (const e of this.entries.values()) {
      if (e.desired == null) continue
      wanted++
      if (e.appliedJson === e.desiredJson && e.error == null && e.registeredAt + e.ttlMs > t) registered++
    }
    return { wanted, registered }
  }

  /**
   * Finalizer cleanup: deregisters every entry of the pool this process knows
   * and every record in the store whose meta names the pool. Throws when the
   * store cannot be reached (the caller retries).
   */
  async cleanupPool (poolKey: string, url: string | undefined, namespace: string, name: string): Promise<number> {
    // entries this process listed are deregistered by setPool; they count as removed too
    this.removedDuringCleanup.set(poolKey, 0)
    let removed = 0
    try {
      await this.setPool(poolKey, null)
    } finally {
      removed = this.removedDuringCleanup.get(poolKey) ?? 0
      this.removedDuringCleanup.delete(poolKey)
    }
    const urls = new Set<string>()
    if (url != null) urls.add(url)
    for (const e of this.entries.values()) if (e.poolKey === poolKey) urls.add(e.url)
    for (const u of urls) {
      const store = this.store(u)
      const records = await store.list()
      for (const r of records) {
        if (r.meta?.managed_by === 'pos-relay-operator' && r.meta.namespace === namespace && r.meta.pool === name) {
          await this.locked(entryKey(u, r.id), async () => {
            if (await store.deregister(r.id, await this.signer.deletionProof(store, r.id, r.peer_id))) {
              removed++
              this.opts.onTransition?.(poolKey, { op: 'deregistered', id: r.id, registration: { id: r.id, peer_id: r.peer_id, addrs: r.addrs, meta: r.meta ?? {} } })
            }
          })
          this.opts.metrics?.operation?.('deregister', 'success')
        }
      }
    }
    const left = [...(this.pools.get(poolKey)?.keys ?? [])].filter((k) => this.entries.get(k)?.error != null)
    if (left.length > 0) throw new Error(`registry cleanup of ${poolKey} incomplete: ${this.entries.get(left[0]!)?.error}`)
    for (const [k, e] of this.entries) if (e.poolKey === poolKey) this.entries.delete(k)
    this.pools.delete(poolKey)
    return removed
  }

  private newEntry (poolKey: string, url: string, id: string, ttlMs: number, absent = true): Entry {
    return { poolKey, url, id, ttlMs, registeredAt: 0, absent, failures: 0, nextAttemptAt: 0 }
  }

  private snapshot (poolKey: string): string {
    return JSON.stringify([[...this.registeredIds(poolKey)].sort(), this.poolError(poolKey) ?? null])
  }

  private notifyIfChanged (poolKey: string, before: string): void {
    if (this.snapshot(poolKey) !== before) this.opts.onPoolChanged?.(poolKey)
  }

  /** brings one entry to its wanted state (registering a wanted entry again once a third of its TTL has passed) */
  private async syncEntry (key: string, gen: number): Promise<void> {
    await this.locked(key, async () => {
      if (gen !== this.generation) return
      const e = this.entries.get(key)
      if (e == null) return
      const t = this.now()
      const store = this.store(e.url)
      if (e.desired != null && this.opts.guard != null && !this.opts.guard(e.desired)) {
        // the relay turned unhealthy since the reconcile that wanted it
        e.desired = undefined
        e.desiredJson = undefined
        e.absent = false
      }
      if (e.desired != null) {
        const due = e.appliedJson !== e.desiredJson || e.error != null || t - e.registeredAt >= e.ttlMs / 3
        if (!due) return
        try {
          const registration = e.desired
          const isNew = e.appliedJson !== e.desiredJson
          await store.register(registration, e.ttlMs, await this.signer.proof('register', registration.id, registration.peer_id, registration.addrs))
          if (gen !== this.generation) return
          if (isNew) this.opts.onTransition?.(e.poolKey, { op: 'registered', registration })
          e.appliedJson = e.desiredJson
          e.registeredAt = this.now()
          e.absent = false
          if (e.error != null) this.opts.logger?.info({ event: 'registry_recovered', id: e.id }, 'registry reachable again')
          e.error = undefined
          e.failures = 0
          this.opts.metrics?.operation?.('register', 'success')
        } catch (err: any) {
          this.fail(e, 'register', err)
        }
        return
      }
      if (e.absent) return
      try {
        const applied = e.appliedJson != null ? JSON.parse(e.appliedJson) as Registration : undefined
        const removed = await store.deregister(e.id, await this.signer.deletionProof(store, e.id, applied?.peer_id))
        if (gen !== this.generation) return
        this.opts.logger?.info({ event: 'relay_deregistered', id: e.id, pool: e.poolKey }, 'relay deregistered')
        // only a relay that was listed is a transition (an unknown id is deregistered just in case)
        if (removed && this.removedDuringCleanup.has(e.poolKey)) this.removedDuringCleanup.set(e.poolKey, this.removedDuringCleanup.get(e.poolKey)! + 1)
        if (removed) this.opts.onTransition?.(e.poolKey, { op: 'deregistered', id: e.id, ...(e.appliedJson != null ? { registration: JSON.parse(e.appliedJson) as Registration } : {}) })
        e.absent = true
        e.appliedJson = undefined
        e.error = undefined
        e.failures = 0
        this.opts.metrics?.operation?.('deregister', 'success')
      } catch (err: any) {
        this.fail(e, 'deregister', err)
      }
    })
  }

  private fail (e: Entry, op: 'register' | 'deregister', err: any): void {
    const message = `${op} ${e.id}: ${err?.cause?.message ?? err?.message ?? String(err)}`
    if (e.error == null) this.opts.logger?.warn({ event: 'registry_error', id: e.id, op, err: message }, 'registry operation failed; retrying')
    e.error = message
    e.failures++
    e.nextAttemptAt = this.now() + Math.min(500 * 2 ** (e.failures - 1), 10_000)
    this.opts.metrics?.operation?.(op, 'error')
  }

  /** heartbeats and retries */
  private async tick (): Promise<void> {
    if (this.ticking) return
    this.ticking = true
    const gen = this.generation
    try {
      const t = this.now()
      const due: string[] = []
      for (const [key, e] of this.entries) {
        if (e.nextAttemptAt > t) continue
        if (e.desired != null) {
          if (e.appliedJson !== e.desiredJson || e.error != null || t - e.registeredAt >= e.ttlMs / 3) due.push(key)
        } else if (!e.absent) {
          due.push(key)
        }
      }
      if (due.length === 0) return
      const touched = new Map<string, string>()
      for (const key of due) {
        const p = this.entries.get(key)?.poolKey
        if (p != null && !touched.has(p)) touched.set(p, this.snapshot(p))
      }
      const limit = this.opts.concurrency ?? 32
      for (let i = 0; i < due.length; i += limit) {
        await Promise.all(due.slice(i, i + limit).map(async (key) => { await this.syncEntry(key, gen) }))
        if (gen !== this.generation) return
      }
      // drop entries that are deregistered and no pool wants
      for (const [key, e] of this.entries) {
        if (e.desired == null && e.absent && !(this.pools.get(e.poolKey)?.keys.has(key) ?? false)) this.entries.delete(key)
      }
      for (const [p, before] of touched) this.notifyIfChanged(p, before)
    } finally {
      this.ticking = false
    }
  }
}
