// The informer's failure handling, against a scripted HTTP endpoint that
// fails the way API servers and networks do (the operator's behaviour against
// the real API server is in operator.integration.test.ts).
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { KubeConfig } from '@kubernetes/client-node'
import { Informer, KubeClient } from '@pos-relay/operator'

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void
let server: Server
let base = ''
let handler: Handler = (_q, res) => { res.writeHead(500).end() }
const requests: string[] = []

before(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    requests.push(`${url.searchParams.get('watch') === 'true' ? 'WATCH' : 'LIST'} rv=${url.searchParams.get('resourceVersion') ?? ''}`)
    handler(req, res, url)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })

function client (): KubeClient {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: base, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x'
  })
  return new KubeClient(kc)
}

const obj = (name: string, rv: string) => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } })
const list = (res: ServerResponse, rv: string, items: unknown[]) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ metadata: { resourceVersion: rv }, items })) }
const event = (res: ServerResponse, type: string, o: unknown) => { res.write(JSON.stringify({ type, object: o }) + '\n') }

function track (inf: Informer<any>) {
  const events: string[] = []
  inf.on({
    add: (o) => { events.push(`add ${o.metadata.name}@${o.metadata.resourceVersion}`) },
    update: (_old, o) => { events.push(`update ${o.metadata.name}@${o.metadata.resourceVersion}`) },
    delete: (o) => { events.push(`delete ${o.metadata.name}`) }
  })
  return events
}

describe('Informer', () => {
  it('lists, then applies watch events; bookmarks move the resourceVersion silently', async () => {
    requests.length = 0
    let watches = 0
    handler = (_req, res, url) => {
      if (url.searchParams.get('watch') !== 'true') { list(res, '10', [obj('a', '5')]); return }
      watches++
      res.writeHead(200, { 'content-type': 'application/json' })
      if (watches === 1) {
        event(res, 'ADDED', obj('b', '11'))
        event(res, 'MODIFIED', obj('a', '12'))
        event(res, 'BOOKMARK', { metadata: { resourceVersion: '20' } })
        event(res, 'DELETED', obj('b', '21'))
        res.end() // server-side timeout: the informer re-watches from rv 21
      }
    }
    const c = client()
    const inf = new Informer<any>(c, { path: '/api/v1/pods', name: 'pods', watchTimeoutSeconds: 5 })
    const events = track(inf)
    inf.start()
    assert.equal(await inf.waitForSync(), true)
    while (watches < 2) await sleep(10)
    await inf.stop()
    c.close()
    assert.deepEqual(events, ['add a@5', 'add b@11', 'update a@12', 'delete b'])
    assert.deepEqual(inf.list().map((o) => o.metadata.name), ['a'])
    assert.deepEqual(requests.slice(0, 3), ['LIST rv=', 'WATCH rv=10', 'WATCH rv=21'])
  })

  it('keeps retrying a failing list with backoff and never gives up', async () => {
    let lists = 0
    const restarts: string[] = []
    handler = (_req, res, url) => {
      if (url.searchParams.get('watch') === 'true') { res.writeHead(200); return }
      lists++
      if (lists <= 3) { res.writeHead(503, { 'content-type': 'application/json' }).end('{"message":"etcd leader changed","reason":"ServiceUnavailable"}'); return }
      list(res, '1', [obj('a', '1')])
    }
    const c = client()
    const inf = new Informer<any>(c, { path: '/api/v1/pods', name: 'pods', backoff: { initialMs: 20, maxMs: 100 }, onRestart: (_n, reason) => { restarts.push(reason) } })
    inf.start()
    assert.equal(await inf.waitForSync(), true)
    assert.equal(lists, 4)
    assert.deepEqual(restarts, ['http_503', 'http_503', 'http_503'])
    await inf.stop()
    c.close()
  })

  it('410 Gone in the watch stream → relist at once; objects missing from the relist are deleted', async () => {
    let lists = 0
    handler = (_req, res, url) => {
      if (url.searchParams.get('watch') !== 'true') {
        lists++
        if (lists === 1) list(res, '100', [obj('a', '1'), obj('b', '2')])
        else list(res, '300', [obj('a', '250'), obj('c', '260')])
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      if (url.searchParams.get('resourceVersion') === '100') event(res, 'ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 100 (200)' })
    }
    const c = client()
    const inf = new Informer<any>(c, { path: '/api/v1/pods', name: 'pods' })
    const events = track(inf)
    inf.start()
    while (lists < 2 || !events.includes('add c@260')) await sleep(10)
    await inf.stop()
    c.close()
    assert.deepEqual(events, ['add a@1', 'add b@2', 'delete b', 'update a@250', 'add c@260'])
  })

  it('a watch that goes silent (half-open connection) is cut by the idle watchdog and restarted', async () => {
    let watches = 0
    handler = (_req, res, url) => {
      if (url.searchParams.get('watch') !== 'true') { list(res, '7', []); return }
      watches++
      res.writeHead(200, { 'content-type': 'application/json' }) // ...and never another byte
      res.flushHeaders()
    }
    const c = client()
    const inf = new Informer<any>(c, { path: '/api/v1/pods', name: 'pods', idleTimeoutMs: 150, backoff: { initialMs: 10, maxMs: 20 } })
    inf.start()
    await inf.waitForSync()
    const t0 = Date.now()
    while (watches < 3) await sleep(10)
    assert.ok(Date.now() - t0 < 2000)
    await inf.stop()
    c.close()
  })

  it('a throwing handler does not stop the informer', async () => {
    handler = (_req, res, url) => {
      if (url.searchParams.get('watch') !== 'true') { list(res, '1', [obj('a', '1')]); return }
      res.writeHead(200, { 'content-type': 'application/json' })
      event(res, 'ADDED', obj('b', '2'))
    }
    const c = client()
    const inf = new Informer<any>(c, { path: '/api/v1/pods', name: 'pods' })
    const seen: string[] = []
    inf.on({ add: (o) => { seen.push(o.metadata.name); throw new Error('boom') } })
    inf.start()
    while (seen.length < 2) await sleep(10)
    assert.deepEqual(seen, ['a', 'b'])
    assert.equal(inf.size, 2)
    await inf.stop()
    c.close()
  })

  it('stop() ends a running watch promptly', async () => {
    handler = (_req, res, url) => {
      if (url.searchParams.get('watch') !== 'true') { list(res, '1', []); return }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.flushHeaders()
    }
    const c = client()
    const inf = new Informer<any>(c, { path: '/api/v1/pods', name: 'pods' })
    inf.start()
    await inf.waitForSync()
    await sleep(50)
    const t0 = Date.now()
    await inf.stop()
    assert.ok(Date.now() - t0 < 500)
    c.close()
  })
})
