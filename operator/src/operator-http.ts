/**
 * The operator's HTTP port: /metrics, /healthz (fails when an informer saw
 * nothing, not even a watch reconnect, for 15 min) and /readyz (caches synced).
 */
import { HttpServer, send } from '@pos-relay/shared'
import type { Registry } from 'prom-client'

interface InformerState { name: string, hasSynced: () => boolean, lastActivity: number }

export interface OperatorHttpOptions {
  port: number
  host: string
  metrics: Registry
  /** refreshes gauges computed on demand */
  beforeScrape: () => void
  informers: InformerState[]
  stopped: () => boolean
  leading: () => boolean
}

/** informers that saw nothing (not even a watch reconnect) for 15 min */
export function staleInformers (informers: InformerState[], now = Date.now()): string[] {
  return informers.filter((i) => i.hasSynced() && now - i.lastActivity > 15 * 60_000).map((i) => i.name)
}

export async function startOperatorHttp (o: OperatorHttpOptions): Promise<{ server: HttpServer, address: { host: string, port: number } }> {
  const http = new HttpServer()
  http.get('/metrics', async (_req, res) => {
    o.beforeScrape()
    send(res, 200, await o.metrics.metrics(), o.metrics.contentType)
  })
  http.get('/healthz', (_req, res) => {
    const stale = staleInformers(o.informers)
    if (stale.length > 0) send(res, 503, { status: 'unhealthy', stale_informers: stale })
    else send(res, 200, { status: 'ok' })
  })
  http.get('/readyz', (_req, res) => {
    const unsynced = o.informers.filter((i) => !i.hasSynced()).map((i) => i.name)
    if (unsynced.length > 0 || o.stopped()) send(res, 503, { status: 'not ready', unsynced })
    else send(res, 200, { status: 'ready', leader: o.leading() })
  })
  const addr = await http.listen(o.port, o.host)
  return { server: http, address: { host: addr.address, port: addr.port } }
}
