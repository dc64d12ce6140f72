/**
 * A relay with auth on that cannot fetch its ticket keys refuses every peer,
 * so it must not report Ready: a RelayPool would list it in discovery and a
 * rollout would count it as up. Real relay, real Redis, a real HTTP server
 * standing for discovery's JWKS endpoint that fails until told otherwise.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { after, afterEach, describe, it } from 'node:test'
import { generateTicketKey, TicketIssuer } from '@pos-relay/accounts'
import { startRedis, waitFor, type RedisServer } from '@pos-relay/testing'
import { runCleanups, startRelay } from './relay-harness.ts'

afterEach(runCleanups)

describe('relay readiness with auth on', { timeout: 60_000 }, () => {
  let redis: RedisServer | undefined
  let jwksServer: Server | undefined
  after(async () => {
    jwksServer?.close()
    await redis?.stop()
  })

  it('is not ready while no ticket key could be fetched, and ready once one is', async () => {
    redis = await startRedis()
    const issuer = await TicketIssuer.create({ keys: [await generateTicketKey()] })
    let serving = false
    let requests = 0
    jwksServer = createServer((_req, res) => {
      requests++
      if (!serving) { res.writeHead(503).end('down'); return }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issuer.jwks()))
    })
    await new Promise<void>((resolve) => jwksServer!.listen(0, '127.0.0.1', resolve))
    const port = (jwksServer.address() as { port: number }).port
    const relay = await startRelay({ auth: { enabled: true, ticket_keys_url: `http://127.0.0.1:${port}/api/p2p/ticket-keys`, redis_url: redis.url } })
    const readyz = async (): Promise<{ status: number, body: { status: string } }> => {
      const res = await fetch(`http://127.0.0.1:${relay.metricsAddress!.port}/readyz`)
      return { status: res.status, body: await res.json() as { status: string } }
    }
    // a retry after the first failed fetch: the relay keeps trying on its own
    await waitFor(() => requests >= 2, { timeoutMs: 10_000, message: 'the relay did not retry fetching the ticket keys' })
    assert.deepEqual(await readyz(), { status: 503, body: { status: 'no_ticket_keys' } })
    // what the TicketKeysMissing alert reads
    const metric = async (name: string): Promise<string | undefined> => {
      const text = await (await fetch(`http://127.0.0.1:${relay.metricsAddress!.port}/metrics`)).text()
      return text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1]
    }
    assert.equal(await metric('pos_relay_ticket_keys_missing'), '1')
    assert.equal(await metric('pos_relay_metering_pending_batches'), '0')
    serving = true
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 20_000, message: 'not ready after the ticket keys became available' })
    assert.equal(await metric('pos_relay_ticket_keys_missing'), '0')
  })

  it('is ready at once with keys configured offline (no fetch)', async () => {
    redis ??= await startRedis()
    const issuer = await TicketIssuer.create({ keys: [await generateTicketKey()] })
    const relay = await startRelay({ auth: { enabled: true, ticket_keys: issuer.jwks(), redis_url: redis.url } })
    const res = await fetch(`http://127.0.0.1:${relay.metricsAddress!.port}/readyz`)
    assert.equal(res.status, 200)
  })
})
