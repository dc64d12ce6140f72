/**
 * A de-duplicating, rate-limited work queue with client-go's semantics
 * (k8s.io/client-go/util/workqueue):
 *
 * - a key that is already waiting is not added twice (dirty set);
 * - a key being processed is never handed to a second worker; adding it
 *   meanwhile re-queues it once when `done()` is called;
 * - `addRateLimited` delays a key by a per-key exponential backoff
 *   (base·2^failures, capped); `forget` resets it after a success;
 * - `addAfter` delays a key (coalescing with an earlier pending delay).
 */

export interface RateLimiter {
  /** delay before the key's next retry; counts a failure */
  when: (key: string) => number
  forget: (key: string) => void
  numRequeues: (key: string) => number
}

/** client-go's ItemExponentialFailureRateLimiter: base·2^n, capped at max. */
export function exponentialRateLimiter (baseMs = 5, maxMs = 1000 * 1000): RateLimiter {
  const failures = new Map<string, number>()
  return {
    when (key) {
      const n = failures.get(key) ?? 0
      failures.set(key, n + 1)
      const delay = baseMs * 2 ** n
      return Number.isFinite(delay) ? Math.min(delay, maxMs) : maxMs
    },
    forget (key) { failures.delete(key) },
    numRequeues (key) { return failures.get(key) ?? 0 }
  }
}

export interface WorkQueueMetrics {
  depth?: (n: number) => void
  add?: () => void
  retry?: () => void
  /** seconds a key waited in the queue before a worker took it */
  queueLatency?: (seconds: number) => void
  /** seconds a worker held a key */
  workDuration?: (seconds: number) => void
}

export interface Timers {
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
  now: () => number
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => { const t = setTimeout(fn, ms); t.unref(); return t },
  clearTimeout: (h) => { clearTimeout(h as NodeJS.Timeout) },
  now: () => performance.now()
}

export class WorkQueue {
  private readonly queue: string[] = []
  private readonly dirty = new Set<string>()
  private readonly processing = new Set<string>()
  private readonly addedAt = new Map<string, number>()
  private readonly startedAt = new Map<string, number>()
  /** pending delayed adds: key → [due time, timer] (only the earliest is kept) */
  private readonly delayed = new Map<string, { due: number, handle: unknown }>()
  private waiters: Array<(key: string | undefined) => void> = []
  private shuttingDown = false

  constructor (
    readonly name: string,
    private readonly limiter: RateLimiter = exponentialRateLimiter(),
    private readonly metrics: WorkQueueMetrics = {},
    private readonly timers: Timers = realTimers
  ) {}

  add (key: string): void {
    if (this.shuttingDown) return
    this.metrics.add?.()
    if (this.dirty.has(key)) return
    this.dirty.add(key)
    this.addedAt.set(key, this.timers.now())
    if (this.processing.has(key)) return
    this.push(key)
  }

  /** adds `key` after `ms`; an earlier pending delay for the same key wins */
  addAfter (key: string, ms: number): void {
    if (this.shuttingDown) return
    if (ms <= 0) { this.add(key); return }
    const due = this.timers.now() + ms
    const pending = this.delayed.get(key)
    if (pending != null) {
      if (pending.due <= due) return
      this.timers.clearTimeout(pending.handle)
    }
    const handle = this.timers.setTimeout(() => {
      this.delayed.delete(key)
      this.add(key)
    }, ms)
    this.delayed.set(key, { due, handle })
  }

  /** re-queues `key` after its per-key backoff and counts a retry */
  addRateLimited (key: string): number {
    const delay = this.limiter.when(key)
    this.metrics.retry?.()
    this.addAfter(key, delay)
    return delay
  }

  forget (key: string): void { this.limiter.forget(key) }
  numRequeues (key: string): number { return this.limiter.numRequeues(key) }

  /** next key to work on; waits for one; undefined once shut down */
  async get (): Promise<string | undefined> {
    const key = this.take()
    if (key != null || this.shuttingDown) return key
    return await new Promise((resolve) => { this.waiters.push(resolve) })
  }

  done (key: string): void {
    this.processing.delete(key)
    const started = this.startedAt.get(key)
    if (started != null) {
      this.metrics.workDuration?.((this.timers.now() - started) / 1000)
      this.startedAt.delete(key)
    }
    if (this.dirty.has(key)) this.push(key)
  }

  get length (): number { return this.queue.length }
  get processingCount (): number { return this.processing.size }
  get delayedCount (): number { return this.delayed.size }
  has (key: string): boolean { return this.dirty.has(key) || this.processing.has(key) || this.delayed.has(key) }

  shutDown (): void {
    this.shuttingDown = true
    for (const { handle } of this.delayed.values()) this.timers.clearTimeout(handle)
    this.delayed.clear()
    for (const w of this.waiters) w(undefined)
    this.waiters = []
  }

  get isShuttingDown (): boolean { return this.shuttingDown }

  private push (key: string): void {
    const waiter = this.waiters.shift()
    if (waiter != null) {
      this.markProcessing(key)
      waiter(key)
    } else {
      this.queue.push(key)
    }
    this.metrics.depth?.(this.queue.length)
  }

  private take (): string | undefined {
    const key = this.queue.shift()
    if (key == null) return undefined
    this.markProcessing(key)
    this.metrics.depth?.(this.queue.length)
    return key
  }

  private markProcessing (key: string): void {
    this.dirty.delete(key)
    this.processing.add(key)
    const added = this.addedAt.get(key)
    if (added != null) {
      this.metrics.queueLatency?.((this.timers.now() - added) / 1000)
      this.addedAt.delete(key)
    }
    this.startedAt.set(key, this.timers.now())
  }
}
