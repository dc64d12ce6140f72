import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export type HttpRoute = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

/**
 * A tiny GET-only HTTP server for the operational endpoints of a process
 * (`/metrics`, `/healthz`, `/readyz`). It has deliberately no body parsing and
 * short timeouts: it is scraped by Prometheus and probed by the kubelet, and
 * must not be a way to tie up the process (slow clients are cut off).
 */
export class HttpServer {
  private readonly server: Server
  private readonly routes = new Map<string, HttpRoute>()

  constructor () {
    this.server = createServer((req, res) => { this.handle(req, res) })
    this.server.headersTimeout = 5_000
    this.server.requestTimeout = 10_000
    this.server.keepAliveTimeout = 5_000
    this.server.maxHeadersCount = 50
    // scrapes and probes need a handful of sockets; slow clients cannot hold more
    this.server.maxConnections = 128
  }

  get (path: string, route: HttpRoute): this {
    this.routes.set(path, route)
    return this
  }

  async listen (port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve() })
    })
    return this.server.address() as AddressInfo
  }

  async close (): Promise<void> {
    if (!this.server.listening) return
    await new Promise<void>((resolve) => {
      this.server.close(() => { resolve() })
      this.server.closeAllConnections()
    })
  }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const route = this.routes.get(path)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { error: 'Method Not Allowed' })
      return
    }
    if (route == null) {
      send(res, 404, { error: 'Not Found', message: `no route ${path}` })
      return
    }
    Promise.resolve(route(req, res)).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, { error: 'Internal Server Error', message: err.message })
      else res.destroy(err)
    })
  }
}

export function send (res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}
