/**
 * Kubernetes Events (events.k8s.io/v1) for what the operator does to a
 * RelayPool, recorded the way client-go's event recorders do, so that
 * `kubectl describe relaypool` and `kubectl events` tell the story without
 * flooding etcd:
 *
 * - An event is identified by what it is about (regarding, related), its
 *   type, reason, action and note. The same event again within the series
 *   window (6 min, client-go's) becomes a series on the first Event: its
 *   `series.count` goes up, and is written at most once per flush interval
 *   (30 s) per event. A reconcile loop that keeps failing the same way is one
 *   Event with a count, never an Event per loop.
 * - New Events per regarded object go through a token bucket (burst 25, one
 *   token per 5 min, as client-go's spam filter): past it they are dropped and
 *   counted, not queued.
 * - Recording never blocks or fails the caller: `record` returns at once, the
 *   API call runs in the background, errors are logged and counted. The
 *   number of calls in flight is bounded; past it, events are dropped.
 *
 * The decisions (create, series update, drop) are made by `EventAggregator`,
 * a pure object with an injected clock; `EventRecorder` does the I/O.
 */
import type { Logger } from '@pos-relay/shared'
import { microTime } from './elector.js'
import { isNotFound, MERGE_PATCH, type KubeClient } from './kube.js'

export const REPORTING_CONTROLLER = 'pos-relay.io/operator'
const EVENTS_API = '/apis/events.k8s.io/v1'

/** core/v1 ObjectReference, as events.k8s.io/v1 `regarding` and `related` take it */
export interface ObjectRef {
  apiVersion: string
  kind: string
  name: string
  namespace?: string
  uid?: string
}

export type EventType = 'Normal' | 'Warning'

export interface EventInput {
  regarding: ObjectRef
  related?: ObjectRef
  type: EventType
  /** CamelCase, why the action was taken or what happened (e.g. RelayPodCreated) */
  reason: string
  /** CamelCase, what the operator did or failed to do (e.g. Create) */
  action: string
  /** human-readable; cut to 1 KiB (the API's limit) */
  note: string
}

export interface AggregatorOptions {
  /** an identical event within this long after the last one continues its series; default 6 min */
  seriesWindowMs?: number
  /** a series' count is written at most this often per event; default 30 s */
  flushIntervalMs?: number
  /** new events per regarded object: bucket size; default 25 */
  burst?: number
  /** new events per regarded object: one token per this many ms; default 5 min */
  refillMs?: number
  /** events remembered (least recently seen forgotten first); default 4096 */
  maxEntries?: number
}

interface Entry {
  name: string
  namespace: string
  count: number
  lastObservedAt: number
  /** count last written to the API */
  writtenCount: number
  lastWriteAt: number
}

export type Decision =
  | { op: 'create', key: string, event: Record<string, unknown> }
  | { op: 'series', key: string, name: string, namespace: string, count: number, lastObservedTime: string }
  /** a series update is due later: call `flush(key)` at `at` */
  | { op: 'defer', key: string, at: number }
  | { op: 'drop', reason: 'rate_limited' }

/** the API's limits: note 1 KiB, reason and action 128 characters */
function cut (s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s
  let out = s.slice(0, max)
  while (Buffer.byteLength(out) > max - 3) out = out.slice(0, -1)
  return out + '...'
}

function refKey (r: ObjectRef | undefined): unknown {
  return r == null ? null : [r.apiVersion, r.kind, r.namespace ?? '', r.name, r.uid ?? '']
}

export class EventAggregator {
  private readonly entries = new Map<string, Entry>()
  private readonly buckets = new Map<string, { tokens: number, at: number }>()
  private readonly o: Required<AggregatorOptions>
  private seq = 0

  constructor (readonly controller: string, readonly instance: string, opts: AggregatorOptions = {}) {
    this.o = {
      seriesWindowMs: opts.seriesWindowMs ?? 6 * 60_000,
      flushIntervalMs: opts.flushIntervalMs ?? 30_000,
      burst: opts.burst ?? 25,
      refillMs: opts.refillMs ?? 5 * 60_000,
      maxEntries: opts.maxEntries ?? 4096
    }
  }

  static keyOf (e: EventInput): string {
    return JSON.stringify([refKey(e.regarding), refKey(e.related), e.type, e.reason, e.action, e.note])
  }

  observe (e: EventInput, now: number): Decision {
    const key = EventAggregator.keyOf(e)
    const entry = this.entries.get(key)
    if (entry != null && now - entry.lastObservedAt < this.o.seriesWindowMs) {
      entry.count++
      entry.lastObservedAt = now
      this.touch(key, entry)
      if (now - entry.lastWriteAt >= this.o.flushIntervalMs) return this.seriesUpdate(key, entry, now)
      return { op: 'defer', key, at: entry.lastWriteAt + this.o.flushIntervalMs }
    }
    if (!this.takeToken(JSON.stringify(refKey(e.regarding)), now)) return { op: 'drop', reason: 'rate_limited' }
    const namespace = e.regarding.namespace ?? 'default'
    // client-go's naming: <object>.<time in hex>; the sequence keeps two events of one millisecond apart
    const name = `${e.regarding.name}.${(BigInt(now) * 1_000_000n + BigInt(this.seq++ % 1_000_000)).toString(16)}`
    this.touch(key, { name, namespace, count: 1, lastObservedAt: now, writtenCount: 1, lastWriteAt: now })
    const event: Record<string, unknown> = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name, namespace },
      eventTime: microTime(now),
      reportingController: this.controller,
      reportingInstance: cut(this.instance, 128),
      regarding: e.regarding,
      ...(e.related != null ? { related: e.related } : {}),
      type: e.type,
      reason: cut(e.reason, 128),
      action: cut(e.action, 128),
      note: cut(e.note, 1024)
    }
    return { op: 'create', key, event }
  }

  /** the deferred series update of `key`, if one is still pending */
  flush (key: string, now: number): Decision | undefined {
    const entry = this.entries.get(key)
    if (entry == null || entry.count === entry.writtenCount) return undefined
    return this.seriesUpdate(key, entry, now)
  }

  /** creating the Event failed: forget it, so the next identical event creates it again */
  forget (key: string): void { this.entries.delete(key) }

  /** the Event is gone (expired by its TTL): the next identical event starts a new one */
  expired (key: string): void { this.entries.delete(key) }

  get size (): number { return this.entries.size }

  private seriesUpdate (key: string, entry: Entry, now: number): Decision {
    entry.writtenCount = entry.count
    entry.lastWriteAt = now
    return { op: 'series', key, name: entry.name, namespace: entry.namespace, count: entry.count, lastObservedTime: microTime(entry.lastObservedAt) }
  }

  private touch (key: string, entry: Entry): void {
    this.entries.delete(key) // re-insert: Map order is recency order
    this.entries.set(key, entry)
    while (this.entries.size > this.o.maxEntries) this.entries.delete(this.entries.keys().next().value!)
  }

  private takeToken (object: string, now: number): boolean {
    const b = this.buckets.get(object) ?? { tokens: this.o.burst, at: now }
    const refill = Math.floor((now - b.at) / this.o.refillMs)
    if (refill > 0) { b.tokens = Math.min(this.o.burst, b.tokens + refill); b.at += refill * this.o.refillMs }
    if (b.tokens >= this.o.burst) b.at = now // a full bucket does not bank time
    this.buckets.delete(object)
    this.buckets.set(object, b)
    while (this.buckets.size > this.o.maxEntries) this.buckets.delete(this.buckets.keys().next().value!)
    if (b.tokens <= 0) return false
    b.tokens--
    return true
  }
}

export type EventResult = 'created' | 'series' | 'dropped' | 'error'

export interface EventRecorderOptions extends AggregatorOptions {
  client: KubeClient
  instance: string
  controller?: string
  logger?: Logger
  onResult?: (type: EventType, result: EventResult) => void
  /** API calls in flight at most; further events are dropped; default 32 */
  maxInFlight?: number
  now?: () => number
}

export class EventRecorder {
  readonly aggregator: EventAggregator
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly inFlight = new Set<Promise<void>>()
  private readonly types = new Map<string, EventType>()
  /** the create call of each Event still in flight: its series updates wait for it */
  private readonly creating = new Map<string, Promise<void>>()
  private readonly now: () => number
  private closed = false

  constructor (private readonly opts: EventRecorderOptions) {
    this.aggregator = new EventAggregator(opts.controller ?? REPORTING_CONTROLLER, opts.instance, opts)
    this.now = opts.now ?? Date.now
  }

  /** best effort, returns at once, never throws */
  record (e: EventInput): void {
    if (this.closed) return
    try {
      this.apply(this.aggregator.observe(e, this.now()), e.type)
    } catch (err: any) {
      this.opts.logger?.warn({ event: 'k8s_event_error', reason: e.reason, err: err?.message }, 'could not record a Kubernetes event')
    }
  }

  /** stops timers (pending series counts are not written) and waits up to `timeoutMs` for calls in flight */
  async close (timeoutMs = 2000): Promise<void> {
    this.closed = true
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs); timer.unref() })
    ])
    clearTimeout(timer)
  }

  private apply (d: Decision, type: EventType): void {
    switch (d.op) {
      case 'drop':
        this.opts.onResult?.(type, 'dropped')
        return
      case 'defer':
        this.types.set(d.key, type)
        if (!this.timers.has(d.key)) {
          const t = setTimeout(() => {
            this.timers.delete(d.key)
            const t2 = this.types.get(d.key) ?? type
            this.types.delete(d.key)
            const next = this.aggregator.flush(d.key, this.now())
            if (next != null && !this.closed) this.apply(next, t2)
          }, Math.max(0, d.at - this.now()))
          t.unref()
          this.timers.set(d.key, t)
        }
        return
      case 'create': {
        const p = this.send(type, 'created', async () => {
          await this.opts.client.request('POST', `${EVENTS_API}/namespaces/${(d.event.metadata as { namespace: string }).namespace}/events`, { body: d.event, timeoutMs: 5000 })
        }, () => { this.aggregator.forget(d.key) })
        if (p != null) {
          this.creating.set(d.key, p)
          void p.finally(() => { if (this.creating.get(d.key) === p) this.creating.delete(d.key) })
        }
        return
      }
      case 'series':
        this.send(type, 'series', async () => {
          // a PATCH that overtook its POST would find no Event
          await this.creating.get(d.key)
          await this.opts.client.request('PATCH', `${EVENTS_API}/namespaces/${d.namespace}/events/${d.name}`, {
            body: { series: { count: d.count, lastObservedTime: d.lastObservedTime } },
            contentType: MERGE_PATCH,
            timeoutMs: 5000
          })
        }, (err) => { if (isNotFound(err)) this.aggregator.expired(d.key) })
    }
  }

  private send (type: EventType, result: EventResult, call: () => Promise<void>, onError: (err: unknown) => void): Promise<void> | undefined {
    if (this.inFlight.size >= (this.opts.maxInFlight ?? 32)) {
      this.opts.onResult?.(type, 'dropped')
      return undefined
    }
    const p = call().then(() => {
      this.opts.onResult?.(type, result)
    }, (err: any) => {
      onError(err)
      this.opts.onResult?.(type, 'error')
      this.opts.logger?.warn({ event: 'k8s_event_error', err: err?.message }, 'could not record a Kubernetes event')
    }).finally(() => { this.inFlight.delete(p) })
    this.inFlight.add(p)
    return p
  }
}
