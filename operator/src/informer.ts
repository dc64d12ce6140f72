/**
 * List+watch informer with a local cache, written for the failure modes of
 * client-node's own informer (which stops on any error other than 410, has no
 * client-side watch timeout and never resyncs):
 *
 * - any error (transport, non-200, ERROR event, unparsable line) restarts the
 *   list+watch after a capped exponential backoff; it never gives up and never
 *   throws out of `start()`;
 * - 410 Gone / "too old resource version" relists at once;
 * - the watch asks the server to end it after `watchTimeoutSeconds` and asks for
 *   bookmarks; an idle watchdog aborts a watch that has been silent for longer
 *   (half-open connections);
 * - a full relist every `relistMs` repairs anything a watch may have missed;
 *   a relist emits only real differences (adds, updates with a new
 *   resourceVersion, deletes of objects that disappeared).
 *
 * Handlers run synchronously and must only enqueue work.
 */
import { Backoff, sleep, type Logger } from '@pos-relay/shared'
import { keyOf } from './api.js'
import { ApiError, type KubeClient, type KubeList, type WatchEvent } from './kube.js'

export interface InformerObject { metadata: { name: string, namespace?: string, resourceVersion?: string } }

export interface InformerHandlers<T> {
  add?: (obj: T) => void
  update?: (oldObj: T, newObj: T) => void
  delete?: (obj: T) => void
}

export interface InformerOptions {
  /** collection path, e.g. /api/v1/pods or /api/v1/namespaces/x/pods */
  path: string
  /** short name for logs and metrics, e.g. "pods" */
  name: string
  labelSelector?: string
  fieldSelector?: string
  /** full relist period; default 10 min */
  relistMs?: number
  /** server-side watch timeout; default 300 s */
  watchTimeoutSeconds?: number
  /** abort a watch that received nothing (not even a bookmark) for this long; default watchTimeoutSeconds + 30 s */
  idleTimeoutMs?: number
  /** restart backoff; default 0.5 s doubling to 30 s */
  backoff?: { initialMs: number, maxMs: number }
  /** page size of lists; default 500 */
  pageSize?: number
  logger?: Logger
  onRestart?: (name: string, reason: string) => void
  /** applied to every object before it is cached (e.g. drop managedFields to save memory) */
  transform?: (obj: any) => any
}

/** controller-runtime's TransformStripManagedFields: the operator never reads managedFields */
export function stripManagedFields<T extends { metadata?: { managedFields?: unknown } }> (obj: T): T {
  if (obj?.metadata?.managedFields !== undefined) delete obj.metadata.managedFields
  return obj
}

export class Informer<T extends InformerObject> {
  private readonly cache = new Map<string, T>()
  private readonly handlers: Array<InformerHandlers<T>> = []
  private readonly backoff: Backoff
  private resourceVersion = ''
  private synced = false
  private stopped = true
  private abort: AbortController | undefined
  private loop: Promise<void> | undefined
  private syncWaiters: Array<() => void> = []
  /** Date.now() of the last list or watch activity; for a staleness check */
  lastActivity = 0

  constructor (private readonly client: KubeClient, readonly opts: InformerOptions) {
    this.backoff = new Backoff({ initialMs: opts.backoff?.initialMs ?? 500, maxMs: opts.backoff?.maxMs ?? 30_000, jitter: 0.2 })
  }

  on (handlers: InformerHandlers<T>): this {
    this.handlers.push(handlers)
    return this
  }

  get name (): string { return this.opts.name }
  hasSynced (): boolean { return this.synced }
  get (key: string): T | undefined { return this.cache.get(key) }
  list (): T[] { return [...this.cache.values()] }
  get size (): number { return this.cache.size }

  start (): void {
    if (!this.stopped) return
    this.stopped = false
    this.loop = this.run()
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.abort?.abort(new Error('informer stopped'))
    await this.loop
    for (const w of this.syncWaiters) w()
    this.syncWaiters = []
  }

  /** resolves once the first list has been loaded (or the informer is stopped) */
  async waitForSync (signal?: AbortSignal): Promise<boolean> {
    if (this.synced) return true
    await new Promise<void>((resolve) => {
      this.syncWaiters.push(resolve)
      signal?.addEventListener('abort', () => { resolve() }, { once: true })
    })
    return this.synced
  }

  private async run (): Promise<void> {
    const log = this.opts.logger
    const relistMs = this.opts.relistMs ?? 600_000
    while (!this.stopped) {
      this.abort = new AbortController()
      const signal = this.abort.signal
      try {
        await this.relist(signal)
        const relistAt = Date.now() + relistMs
        while (!this.stopped && Date.now() < relistAt) {
          const remaining = Math.max(1, Math.ceil((relistAt - Date.now()) / 1000))
          const started = Date.now()
          const ended = await this.watchOnce(Math.min(this.opts.watchTimeoutSeconds ?? 300, remaining), signal)
          this.backoff.reset()
          if (ended === 'gone') break // relist now
          // a server that ends watches at once must not turn this loop into a hot loop
          if (Date.now() - started < 1000) await sleep(1000, signal)
        }
      } catch (err: any) {
        if (this.stopped) break
        const delay = this.backoff.next()
        const reason = err instanceof ApiError ? `http_${err.code}` : (err?.code ?? err?.name ?? 'error')
        log?.warn({ event: 'informer_restart', informer: this.opts.name, err: err?.message, retry_in_ms: delay }, 'list/watch failed; restarting after backoff')
        this.opts.onRestart?.(this.opts.name, String(reason))
        try { await sleep(delay, signal) } catch { /* stopped */ }
      }
    }
  }

  private async relist (signal: AbortSignal): Promise<void> {
    const items = new Map<string, T>()
    let cont: string | undefined
    let rv = ''
    do {
      const page = await this.client.get<KubeList<T>>(this.opts.path, {
        query: { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector, limit: this.opts.pageSize ?? 500, continue: cont },
        signal
      })
      for (const raw of page.items ?? []) {
        const item = this.opts.transform != null ? this.opts.transform(raw) as T : raw
        items.set(keyOf(item), item)
      }
      cont = page.metadata.continue !== '' ? page.metadata.continue : undefined
      rv = page.metadata.resourceVersion ?? ''
    } while (cont != null)
    this.lastActivity = Date.now()
    // replace the cache, emitting only real differences
    for (const [key, old] of this.cache) {
      if (!items.has(key)) { this.cache.delete(key); this.emit('delete', old) }
    }
    for (const [key, obj] of items) {
      const old = this.cache.get(key)
      this.cache.set(key, obj)
      if (old == null) this.emit('add', obj)
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit('update', obj, old)
    }
    this.resourceVersion = rv
    if (!this.synced) {
      this.synced = true
      for (const w of this.syncWaiters) w()
      this.syncWaiters = []
    }
  }

  /** One watch request; resolves 'ended' when the server closed it normally, 'gone' when a relist is needed. */
  private async watchOnce (timeoutSeconds: number, outer: AbortSignal): Promise<'ended' | 'gone'> {
    const idleMs = this.opts.idleTimeoutMs ?? (timeoutSeconds * 1000 + 30_000)
    const ctl = new AbortController()
    const onOuter = (): void => { ctl.abort(outer.reason) }
    outer.addEventListener('abort', onOuter, { once: true })
    let idleTimer: NodeJS.Timeout | undefined
    const touch = (): void => {
      this.lastActivity = Date.now()
      if (idleTimer != null) clearTimeout(idleTimer)
      idleTimer = setTimeout(() => { ctl.abort(new Error(`watch ${this.opts.name} idle for ${idleMs} ms`)) }, idleMs)
    }
    let gone = false
    try {
      touch()
      await this.client.watch<T>(this.opts.path, {
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds
      }, (ev) => {
        if (this.handleEvent(ev) === 'gone') { gone = true; ctl.abort(new Error('resource version gone')) }
      }, ctl.signal, touch)
    } catch (err) {
      if (gone) return 'gone'
      if (ctl.signal.aborted && !outer.aborted) throw ctl.signal.reason instanceof Error ? ctl.signal.reason : new Error(String(ctl.signal.reason))
      throw err
    } finally {
      if (idleTimer != null) clearTimeout(idleTimer)
      outer.removeEventListener('abort', onOuter)
    }
    return gone ? 'gone' : 'ended'
  }

  private handleEvent (ev: WatchEvent<T>): 'ok' | 'gone' {
    const obj = ev.type !== 'ERROR' && this.opts.transform != null ? this.opts.transform(ev.object) as T : ev.object
    switch (ev.type) {
      case 'ADDED':
      case 'MODIFIED': {
        const key = keyOf(obj)
        const old = this.cache.get(key)
        this.cache.set(key, obj)
        this.resourceVersion = obj.metadata.resourceVersion ?? this.resourceVersion
        if (old == null) this.emit('add', obj)
        else this.emit('update', obj, old)
        return 'ok'
      }
      case 'DELETED': {
        const key = keyOf(obj)
        const old = this.cache.get(key)
        this.cache.delete(key)
        this.resourceVersion = obj.metadata.resourceVersion ?? this.resourceVersion
        this.emit('delete', old ?? obj)
        return 'ok'
      }
      case 'BOOKMARK':
        this.resourceVersion = obj.metadata.resourceVersion ?? this.resourceVersion
        return 'ok'
      case 'ERROR': {
        const st = obj as unknown as { code?: number, message?: string, reason?: string }
        if (st.code === 410 || st.reason === 'Expired' || st.reason === 'Gone') {
          this.resourceVersion = ''
          return 'gone'
        }
        throw new ApiError(st.code ?? 500, `watch ${this.opts.name}: ${st.message ?? 'error event'}`, st.reason)
      }
      default:
        return 'ok'
    }
  }

  private emit (kind: 'add' | 'update' | 'delete', obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        if (kind === 'add') h.add?.(obj)
        else if (kind === 'update') h.update?.(old as T, obj)
        else h.delete?.(obj)
      } catch (err: any) {
        this.opts.logger?.error({ event: 'informer_handler_error', informer: this.opts.name, err: err?.message }, 'event handler threw')
      }
    }
  }
}
