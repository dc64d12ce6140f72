/**
 * A small REST client for the Kubernetes API on top of @kubernetes/client-node's
 * KubeConfig (which loads kubeconfig files and in-cluster service-account
 * credentials, and refreshes tokens).
 *
 * Why not the generated clients of client-node 1.x: they build a new
 * https.Agent for every request (no keep-alive: a TLS handshake per call),
 * turn objects into class instances with Date fields (so observed and desired
 * objects no longer compare as JSON), and their Watch cannot be aborted while
 * it is still connecting. Here every request shares one keep-alive agent, is
 * counted (`rest_client_requests_total{method,code}`), has a timeout, and
 * objects stay plain JSON. Watches are streamed with a caller-owned
 * AbortSignal so an idle-connection watchdog can cut them at any stage.
 */
import http from 'node:http'
import https from 'node:https'
import { createInterface } from 'node:readline'
import { KubeConfig } from '@kubernetes/client-node'
import { FIELD_MANAGER } from './api.js'

export class ApiError extends Error {
  override name = 'ApiError'
  constructor (readonly code: number, message: string, readonly reason?: string, readonly body?: unknown) {
    super(message)
  }
}

export function isNotFound (err: unknown): boolean { return err instanceof ApiError && err.code === 404 }
export function isConflict (err: unknown): boolean { return err instanceof ApiError && err.code === 409 }
export function isGone (err: unknown): boolean { return err instanceof ApiError && err.code === 410 }

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>
  body?: unknown
  contentType?: string
  signal?: AbortSignal
  timeoutMs?: number
  /** e.g. `application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` */
  accept?: string
}

export interface KubeList<T> {
  apiVersion?: string
  kind?: string
  metadata: { resourceVersion?: string, continue?: string }
  items: T[]
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'
  object: T
}

export interface KubeClientOptions {
  /** called once per HTTP request with its method and status code (or '<error>') */
  onRequest?: (method: string, code: string) => void
  /** default per-request timeout; watches are not subject to it */
  timeoutMs?: number
  userAgent?: string
}

export const APPLY_PATCH = 'application/apply-patch+yaml'
export const MERGE_PATCH = 'application/merge-patch+json'
export const JSON_PATCH = 'application/json-patch+json'

interface Prepared { url: URL, headers: Record<string, string>, agent: http.Agent }

export function loadKubeConfig (kubeconfig?: string): KubeConfig {
  const kc = new KubeConfig()
  if (kubeconfig != null && kubeconfig !== '') kc.loadFromFile(kubeconfig)
  else if (process.env.KUBERNETES_SERVICE_HOST != null) kc.loadFromCluster()
  else kc.loadFromDefault()
  if (kc.getCurrentCluster() == null) throw new Error('no Kubernetes cluster configured: pass --kubeconfig or run in a cluster')
  return kc
}

export class KubeClient {
  private agent: http.Agent | undefined
  private agentKey = ''
  private readonly timeoutMs: number

  constructor (readonly kc: KubeConfig, private readonly opts: KubeClientOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30_000
  }

  get server (): string { return this.kc.getCurrentCluster()?.server ?? '' }

  /** Authentication headers are taken fresh per request (tokens rotate); the TLS agent is reused. */
  private async prepare (path: string, query?: RequestOptions['query']): Promise<Prepared> {
    const cluster = this.kc.getCurrentCluster()
    if (cluster == null) throw new Error('no current cluster in kubeconfig')
    const url = new URL(cluster.server.replace(/\/$/, '') + path)
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v))
    const opts: https.RequestOptions = {}
    await this.kc.applyToHTTPSOptions(opts)
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v != null) headers[k] = Array.isArray(v) ? v.join(', ') : String(v)
    }
    if (opts.auth != null) headers.authorization = 'Basic ' + Buffer.from(opts.auth).toString('base64')
    headers['user-agent'] = this.opts.userAgent ?? 'pos-relay-operator'
    let agent: http.Agent
    if (cluster.proxyUrl != null) {
      agent = opts.agent as http.Agent // proxy agents from client-node, as configured
    } else {
      const tls = opts.agent as https.Agent & { options: https.AgentOptions }
      const o = tls?.options ?? {}
      const key = JSON.stringify([url.protocol, o.ca, o.cert, o.key, o.pfx, o.rejectUnauthorized, o.servername])
      if (this.agent == null || key !== this.agentKey) {
        this.agent?.destroy()
        this.agent = url.protocol === 'http:'
          ? new http.Agent({ keepAlive: true, maxSockets: 32 })
          : new https.Agent({ ...pickTls(o), keepAlive: true, maxSockets: 32 })
        this.agentKey = key
      }
      agent = this.agent
    }
    return { url, headers, agent }
  }

  async request<T> (method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const { url, headers, agent } = await this.prepare(path, o.query)
    const payload = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body)
    if (payload !== undefined) {
      headers['content-type'] = o.contentType ?? 'application/json'
      headers['content-length'] = String(Buffer.byteLength(payload))
    }
    headers.accept = o.accept ?? 'application/json'
    const mod = url.protocol === 'http:' ? http : https
    let code = '<error>'
    try {
      const { status, text } = await new Promise<{ status: number, text: string }>((resolve, reject) => {
        const req = mod.request(url, { method, headers, agent, signal: o.signal }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }) })
          res.on('error', reject)
        })
        req.setTimeout(o.timeoutMs ?? this.timeoutMs, () => { req.destroy(new Error(`${method} ${path}: timed out after ${o.timeoutMs ?? this.timeoutMs} ms`)) })
        req.on('error', reject)
        req.end(payload)
      })
      code = String(status)
      const body = text === '' ? undefined : safeJson(text)
      if (status >= 200 && status < 300) return body as T
      const st = body as { message?: string, reason?: string } | undefined
      throw new ApiError(status, `${method} ${url.pathname}: ${status} ${st?.message ?? text.slice(0, 300)}`, st?.reason, body)
    } finally {
      this.opts.onRequest?.(method, code)
    }
  }

  get<T> (path: string, o?: RequestOptions): Promise<T> { return this.request<T>('GET', path, o) }

  /** Server-side apply with the operator's one field manager, taking over conflicting fields (force). */
  apply<T> (path: string, obj: unknown, o: { dryRun?: boolean } = {}): Promise<T> {
    return this.request<T>('PATCH', path, {
      body: obj,
      contentType: APPLY_PATCH,
      query: { fieldManager: FIELD_MANAGER, force: true, ...(o.dryRun === true ? { dryRun: 'All' } : {}) }
    })
  }

  delete<T> (path: string, body?: unknown): Promise<T> {
    return this.request<T>('DELETE', path, body === undefined ? {} : { body })
  }

  /**
   * Streams a watch. Resolves when the server ends the stream (its
   * timeoutSeconds elapsed); rejects on a transport error, a non-200 answer, or
   * when `signal` aborts. `onActivity` is called for every received line,
   * including bookmarks, so the caller can run an idle watchdog.
   */
  async watch<T> (path: string, query: RequestOptions['query'], onEvent: (ev: WatchEvent<T>) => void, signal: AbortSignal, onActivity?: () => void): Promise<void> {
    const { url, headers, agent } = await this.prepare(path, { ...query, watch: true })
    headers.accept = 'application/json'
    const mod = url.protocol === 'http:' ? http : https
    await new Promise<void>((resolve, reject) => {
      let settled = false
      const finish = (err?: Error): void => {
        if (settled) return
        settled = true
        if (err != null) reject(err); else resolve()
      }
      const req = mod.request(url, { method: 'GET', headers, agent, signal }, (res) => {
        this.opts.onRequest?.('WATCH', String(res.statusCode ?? 0))
        if (res.statusCode !== 200) {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8')
            const st = safeJson(text) as { message?: string, reason?: string } | undefined
            finish(new ApiError(res.statusCode ?? 0, `WATCH ${url.pathname}: ${res.statusCode} ${st?.message ?? text.slice(0, 300)}`, st?.reason, st))
          })
          res.on('error', (e) => { finish(e) })
          return
        }
        onActivity?.()
        const lines = createInterface({ input: res, crlfDelay: Infinity })
        lines.on('line', (line) => {
          if (settled) return
          onActivity?.()
          if (line.trim() === '') return
          let ev: WatchEvent<T>
          try { ev = JSON.parse(line) as WatchEvent<T> } catch { finish(new Error(`WATCH ${url.pathname}: unparsable event`)); req.destroy(); return }
          try { onEvent(ev) } catch (err) { finish(err as Error); req.destroy() }
        })
        res.on('error', (e) => { finish(e) })
        // readline re-emits input errors on the interface; unhandled they would crash the process
        lines.on('error', (e) => { finish(e) })
        res.on('aborted', () => { finish(new Error(`WATCH ${url.pathname}: connection aborted`)) })
        lines.on('close', () => { finish(res.errored ?? (res.complete ? undefined : new Error(`WATCH ${url.pathname}: connection closed before the end of the response`))) })
      })
      req.on('error', (e) => {
        if (!settled) this.opts.onRequest?.('WATCH', '<error>')
        finish(e)
      })
      req.end()
    })
  }

  close (): void {
    this.agent?.destroy()
    this.agent = undefined
  }
}

function pickTls (o: https.AgentOptions): https.AgentOptions {
  const out: https.AgentOptions = {}
  for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const) {
    if (o[k] !== undefined) (out as any)[k] = o[k]
  }
  return out
}

function safeJson (text: string): unknown {
  try { return JSON.parse(text) } catch { return undefined }
}
