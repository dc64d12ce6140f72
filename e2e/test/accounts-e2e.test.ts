/**
 * Accounts end to end: a discovery API issuing tickets, two relay processes
 * with auth on, sharing one real Redis; plain libp2p peers presenting good
 * and forged tickets; SDK peers with API keys; revocation, metering and
 * quotas across both relays.
 */
import assert from 'node:assert/strict'
import { createHmac, randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createRelayPeer, presentTicket, TicketRejectedError } from '@pos-relay/client'
import { freePort, startRedis, waitFor, type RedisServer, scrapeMetric } from '@pos-relay/testing'
import { importJWK, SignJWT } from 'jose'
import { createLibp2p, type Libp2p } from 'libp2p'
import { hopRequest, RESERVE } from '../../relay-image/test/hop-client.ts'
import { runCli, spawnCli, type CliProcess } from './helpers/cli.ts'
import { sendToSink, serveSink } from './helpers/transfer.ts'

const PERMISSION_DENIED = 202
const RESOURCE_LIMIT_EXCEEDED = 201
const ADMIN = 'admin-' + randomUUID()
const MiB = 1024 * 1024
const TIERS = {
  free: { name: 'free', max_reservations: 8, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 },
  tiny: { name: 'tiny', max_reservations: 2, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 3 * MiB }
}

const b64url = (x: string | Buffer): string => Buffer.from(x).toString('base64url')

const metric = scrapeMetric

describe('accounts: tickets, revocation, metering, quotas', { timeout: 300_000 }, () => {
  let redis: RedisServer
  let dir: string
  let discovery: CliProcess
  let api: string
  let keys: any[]
  const relays: Array<{ proc: CliProcess, addr: Multiaddr, metricsPort: number, config: string, args: string[] }> = []
  const cleanup: Array<() => unknown> = []

  const admin = async (method: string, path: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${api}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, ...(body != null ? { 'content-type': 'application/json' } : {}) }, ...(body != null ? { body: JSON.stringify(body) } : {}) })
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`)
    return res.headers.get('content-type')?.includes('json') === true ? await res.json() : await res.text()
  }
  const ticketFor = async (apiKey: string, peerId: string): Promise<{ ticket: string, jti: string }> => {
    const res = await fetch(`${api}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: peerId }) })
    assert.equal(res.status, 200, await res.clone().text())
    return await res.json() as { ticket: string, jti: string }
  }
  const plainNode = async (): Promise<Libp2p> => {
    const node = await createLibp2p({ transports: [tcp(), circuitRelayTransport()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
    cleanup.push(async () => { await node.stop() })
    return node
  }
  const startRelay = (i: number): CliProcess => {
    const r = relays[i]!
    r.proc = spawnCli(r.args)
    return r.proc
  }

  before(async () => {
    // accounts must survive the Redis restart below, as with a production Redis
    redis = await startRedis({ persistent: true })
    dir = await mkdtemp(join(tmpdir(), 'pos-relay-accounts-'))
    const keysFile = join(dir, 'ticket-keys.json')
    assert.equal((await runCli(['keys', 'generate', '--out', keysFile])).code, 0)
    keys = JSON.parse(await readFile(keysFile, 'utf8'))
    const tiersFile = join(dir, 'tiers.json')
    await writeFile(tiersFile, JSON.stringify(TIERS))
    const port = await freePort()
    api = `http://127.0.0.1:${port}`
    discovery = spawnCli(['discovery', '--host', '127.0.0.1', '--port', String(port), '--redis', redis.url, '--ticket-keys-file', keysFile, '--tiers-file', tiersFile],
      { env: { P2P_SECRET: 'p2p', ADMIN_SECRET: ADMIN } })
    await discovery.waitForJson((o) => o.event === 'discovery_ready')
    for (const name of ['a', 'b']) {
      const config = join(dir, `relay-${name}.json`)
      assert.equal((await runCli(['init', '--config', config, '--api-url', api], { input: 'p2p\n' })).code, 0)
      const metricsPort = await freePort()
      const args = ['run', '--config', config, '--host', '127.0.0.1', '--port', String(await freePort()), '--metrics-host', '127.0.0.1', '--metrics-port', String(metricsPort),
        '--auth', '--redis', redis.url, '--tiers-file', tiersFile, '--metering-interval', '1', '--drain-seconds', '1']
      relays.push({ proc: undefined as any, addr: undefined as any, metricsPort, config, args })
      const ready = await startRelay(relays.length - 1).waitForJson((o) => o.event === 'relay_ready')
      relays[relays.length - 1]!.addr = multiaddr(ready.addrs[0])
    }
  })

  after(async () => {
    for (const c of cleanup.reverse()) await c()
    for (const r of relays) await r.proc?.kill('SIGKILL')
    await discovery?.kill('SIGKILL')
    await redis?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('refuses reservations without a valid ticket for the peer itself, saying why, and keeps none', async () => {
    const { api_key: apiKey } = await admin('POST', '/api/admin/accounts', { name: 'acme', tier: 'free' })
    const relay = relays[0]!
    const peer = await plainNode()
    const other = await plainNode()
    // no ticket at all
    assert.equal((await hopRequest(peer, relay.addr, RESERVE)).status, PERMISSION_DENIED)

    const key = keys[0]
    const now = Math.floor(Date.now() / 1000)
    const claims = { account: 'x', tier: 'free', sub: peer.peerId.toString(), jti: randomUUID() }
    const sign = async (jwk: any, payload: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> =>
      await new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', kid: jwk.kid, ...header }).sign(await importJWK(jwk, 'EdDSA'))
    const otherKey = JSON.parse((await runCli(['keys', 'generate'])).stdout)[0]
    const publicX = Buffer.from(key.x, 'base64url')
    const forged: Array<[string, string]> = [
      ['wrong_peer', (await ticketFor(apiKey, other.peerId.toString())).ticket],
      ['expired', await sign(key, { ...claims, iat: now - 7200, exp: now - 3600 })],
      ['unknown_key', await sign(otherKey, { ...claims, iat: now, exp: now + 600 })],
      ['bad_signature', await sign({ ...otherKey, kid: key.kid }, { ...claims, iat: now, exp: now + 600 })],
      ['bad_algorithm', `${b64url(JSON.stringify({ alg: 'none', kid: key.kid }))}.${b64url(JSON.stringify({ ...claims, iat: now, exp: now + 600 }))}.`],
      ['bad_algorithm', (() => {
        const input = `${b64url(JSON.stringify({ alg: 'HS256', kid: key.kid }))}.${b64url(JSON.stringify({ ...claims, iat: now, exp: now + 600 }))}`
        return `${input}.${createHmac('sha256', publicX).update(input).digest('base64url')}`
      })()],
      ['bad_claims', await sign(key, { ...claims, iat: now, exp: now + 7200 })],
      ['malformed', (await ticketFor(apiKey, peer.peerId.toString())).ticket.slice(0, 40)],
      ['malformed', 'garbage'],
      ['malformed', '\u0000\uffff'.repeat(10)]
    ]
    const relayId = (await peer.dial(relay.addr)).remotePeer
    for (const [reason, token] of forged) {
      await assert.rejects(presentTicket(peer, relayId, token),
        (err: any) => err instanceof TicketRejectedError && err.reason === reason, `expected ${reason}`)
      assert.equal((await hopRequest(peer, relay.addr, RESERVE)).status, PERMISSION_DENIED, `reservation allowed after a ${reason} ticket`)
    }
    assert.equal(await metric(relay.metricsPort, /^pos_relay_reservations_active (\d+)/m), 0)
    // the relay logged the reasons and is still up
    assert.ok(relay.proc.stderr.some((l) => l.includes('ticket_wrong_peer')))
    assert.equal((await fetch(`http://127.0.0.1:${relay.metricsPort}/healthz`)).status, 200)
    // and the genuine ticket works
    const good = await ticketFor(apiKey, peer.peerId.toString())
    await presentTicket(peer, relayId, good.ticket)
    assert.equal((await hopRequest(peer, relay.addr, RESERVE)).status, 100)
  })

  it('SDK peers with API keys reserve, dial and relay; revoking the account ends it on the other relay within 5 s', async () => {
    const { account, api_key: apiKey } = await admin('POST', '/api/admin/accounts', { name: 'revoke-me', tier: 'free' })
    const a = await createRelayPeer({ discoveryUrl: api, apiKey, relayCount: 2, listen: ['/ip4/127.0.0.1/tcp/0'] })
    const b = await createRelayPeer({ discoveryUrl: api, apiKey, relayCount: 2, listen: ['/ip4/127.0.0.1/tcp/0'] })
    cleanup.push(async () => { await a.stop(); await b.stop() })
    await serveSink(a.node)
    // by relay, not by address count: each relay hands out a TCP and a QUIC circuit address
    await waitFor(() => relays.every((r) => a.relays.hasReservation(r.addr.toString().split('/p2p/')[1]!)), { timeoutMs: 15_000, message: 'not reserved on both relays' })
    const { sent, received } = await sendToSink(await b.relays.dial(a.node.peerId), 2 * MiB)
    assert.deepEqual(received, sent)

    const before = await metric(relays[1]!.metricsPort, /^pos_relay_reservations_active (\d+)/m)
    assert.ok(before >= 1)
    const t0 = Date.now()
    await admin('POST', `/api/admin/accounts/${account.id}/disable`)
    await waitFor(async () => await metric(relays[1]!.metricsPort, /^pos_relay_reservations_active (\d+)/m) < before, { timeoutMs: 5000, intervalMs: 100, message: 'revocation did not reach the second relay within 5 s' })
    process.stdout.write(`# revocation reached the second relay in ${Date.now() - t0} ms\n`)
    // and a new ticket cannot be had
    const res = await fetch(`${api}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: a.node.peerId.toString() }) })
    assert.equal(res.status, 401)
  })

  it('meters bytes per account exactly (payload + stated overhead within 1 %), across a relay restart and a Redis restart', async () => {
    const x = await admin('POST', '/api/admin/accounts', { name: 'meter-x', tier: 'free' })
    const y = await admin('POST', '/api/admin/accounts', { name: 'meter-y', tier: 'free' })
    const relay = relays[0]!
    const relayPeer = async (node: Libp2p): Promise<any> => (await node.dial(relay.addr)).remotePeer
    const listener = await plainNode()
    await serveSink(listener)
    const lt = await ticketFor(x.api_key, listener.peerId.toString())
    await presentTicket(listener, await relayPeer(listener), lt.ticket)
    await (listener as any).components.transportManager.listen([relay.addr.encapsulate('/p2p-circuit')])
    const payload = { [x.account.id]: 0, [y.account.id]: 0 }
    /** a dialer holding a ticket of `acct`, presented to the relay (tickets come from discovery, which needs Redis) */
    const prepare = async (acct: any): Promise<Libp2p> => {
      const dialer = await plainNode()
      await presentTicket(dialer, await relayPeer(dialer), (await ticketFor(acct.api_key, dialer.peerId.toString())).ticket)
      return dialer
    }
    const circuit = async (acct: any, bytes: number, prepared?: Libp2p): Promise<void> => {
      const dialer = prepared ?? await prepare(acct)
      const conn = await dialer.dial(relay.addr.encapsulate(`/p2p-circuit/p2p/${listener.peerId}`))
      const { sent, received } = await sendToSink(conn, bytes)
      assert.deepEqual(received, sent)
      payload[acct.account.id]! += bytes
      await dialer.stop()
    }
    await circuit(x, 3 * MiB)
    await circuit(y, 2 * MiB)
    // Redis dies in the middle of traffic and comes back later
    const [dx, dy] = [await prepare(x), await prepare(y)]
    const during = circuit(x, 4 * MiB, dx)
    await new Promise((resolve) => setTimeout(resolve, 50))
    await redis.kill()
    await during
    await circuit(y, 1 * MiB, dy)
    await new Promise((resolve) => setTimeout(resolve, 1500)) // flushes fail and are kept
    await redis.restart()
    await new Promise((resolve) => setTimeout(resolve, 2500)) // kept batches are replayed
    // the relay restarts (graceful: its last usage is flushed on the way out)
    await relay.proc.kill('SIGTERM')
    relay.proc = spawnCli(relay.args)
    await relay.proc.waitForJson((o) => o.event === 'relay_ready')
    const again = await plainNode()
    await serveSink(again)
    await presentTicket(again, await relayPeer(again), (await ticketFor(x.api_key, again.peerId.toString())).ticket)
    await (again as any).components.transportManager.listen([relay.addr.encapsulate('/p2p-circuit')])
    const dialer = await prepare(y)
    const conn = await dialer.dial(relay.addr.encapsulate(`/p2p-circuit/p2p/${again.peerId}`))
    const { sent, received } = await sendToSink(conn, 2 * MiB)
    assert.deepEqual(received, sent)
    payload[y.account.id]! += 2 * MiB
    await new Promise((resolve) => setTimeout(resolve, 2500))

    const from = new Date(Date.now() - 3600_000).toISOString()
    const to = new Date(Date.now() + 3600_000).toISOString()
    for (const acct of [x, y]) {
      const rows = await admin('GET', `/api/admin/usage?account=${acct.account.id}&from=${from}&to=${to}&format=json`) as any[]
      const toDestination = rows.reduce((n, r) => n + r.bytes_to_destination, 0)
      const circuits = rows.reduce((n, r) => n + r.circuits, 0)
      const overhead = (toDestination - payload[acct.account.id]!) / payload[acct.account.id]!
      process.stdout.write(`# account ${acct.account.name}: payload ${payload[acct.account.id]} B, metered to_destination ${toDestination} B (overhead ${(overhead * 100).toFixed(3)} %), circuits ${circuits}\n`)
      assert.ok(overhead >= 0 && overhead < 0.01, `metered ${toDestination} for ${payload[acct.account.id]} payload bytes`)
      assert.equal(circuits, acct === x ? 2 : 3)
    }
    const csv = await admin('GET', `/api/admin/usage?account=${x.account.id}&from=${from}&to=${to}&format=csv`)
    assert.match(String(csv), /bytes_to_destination/)
  })

  it('cuts an account at its monthly quota, and the other relay refuses it too', async () => {
    const t = await admin('POST', '/api/admin/accounts', { name: 'tiny', tier: 'tiny' })
    const r0 = relays[0]!; const r1 = relays[1]!
    const listener = await plainNode()
    await serveSink(listener)
    const lp = (await listener.dial(r0.addr)).remotePeer
    await presentTicket(listener, lp, (await ticketFor(t.api_key, listener.peerId.toString())).ticket)
    await (listener as any).components.transportManager.listen([r0.addr.encapsulate('/p2p-circuit')])
    const dialer = await plainNode()
    await presentTicket(dialer, (await dialer.dial(r0.addr)).remotePeer, (await ticketFor(t.api_key, dialer.peerId.toString())).ticket)
    const conn = await dialer.dial(r0.addr.encapsulate(`/p2p-circuit/p2p/${listener.peerId}`))
    await assert.rejects(Promise.race([
      sendToSink(conn, 5 * MiB),
      new Promise((resolve) => { setTimeout(resolve, 30_000, 'neither cut nor finished within 30 s').unref() })
    ]).then((v) => { if (v === 'neither cut nor finished within 30 s') throw new assert.AssertionError({ message: String(v) }); return v }).then(() => 'completed'),
    (err: any) => !(err instanceof assert.AssertionError), 'a 5 MiB transfer went through a 3 MiB quota, or hung')
    await waitFor(async () => await metric(r0.metricsPort, /^pos_relay_circuit_ends_total\{reason="quota"\} (\d+)/m) >= 1, { timeoutMs: 5000, message: 'circuit not ended for quota' })
    await new Promise((resolve) => setTimeout(resolve, 2000)) // one metering interval: usage reaches Redis
    // on the second relay: reserve works (quota is about bytes), but the circuit is refused
    const l2 = await plainNode()
    await presentTicket(l2, (await l2.dial(r1.addr)).remotePeer, (await ticketFor(t.api_key, l2.peerId.toString())).ticket)
    assert.equal((await hopRequest(l2, r1.addr, RESERVE)).status, 100)
    const d2 = await plainNode()
    await presentTicket(d2, (await d2.dial(r1.addr)).remotePeer, (await ticketFor(t.api_key, d2.peerId.toString())).ticket)
    const { connectMessage } = await import('../../relay-image/test/hop-client.ts')
    assert.equal((await hopRequest(d2, r1.addr, connectMessage(l2.peerId))).status, RESOURCE_LIMIT_EXCEEDED)
  })

  it('survives a few thousand random and mutated messages on the ticket protocol', async () => {
    const relay = relays[1]!
    const node = await plainNode()
    const relayId = (await node.dial(relay.addr)).remotePeer
    const { randomBytes } = await import('node:crypto')
    const base = (await ticketFor((await admin('POST', '/api/admin/accounts', { name: 'fuzz', tier: 'free' })).api_key, node.peerId.toString())).ticket
    const cases = Number(process.env.TICKET_FUZZ_CASES ?? 2000)
    let rejected = 0
    for (let i = 0; i < cases; i++) {
      let token: string
      if (i % 3 === 0) token = randomBytes(1 + (i % 300)).toString('latin1')
      else {
        const chars = base.split('')
        for (let k = 0; k < 1 + (i % 5); k++) chars[(i * 31 + k * 7) % chars.length] = String.fromCharCode(32 + ((i + k) % 95))
        token = chars.join('')
      }
      try { await presentTicket(node, relayId, token) } catch (err) { if (err instanceof TicketRejectedError) rejected++ }
    }
    assert.ok(rejected >= cases * 0.95, `only ${rejected} of ${cases} rejected`)
    assert.equal((await fetch(`http://127.0.0.1:${relay.metricsPort}/healthz`)).status, 200)
  })
  it('verifies tickets offline with public keys from a file, without a discovery URL, and refuses private keys there', async () => {
    const keysFile = join(dir, 'ticket-keys.json')
    const pub = await runCli(['keys', 'public', '--in', keysFile])
    assert.equal(pub.code, 0, pub.stderr)
    const publicFile = join(dir, 'ticket-keys.public.json')
    await writeFile(publicFile, pub.stdout)
    const config = join(dir, 'relay-offline.json')
    assert.equal((await runCli(['init', '--config', config], { input: 'p2p\n' })).code, 0) // no --api-url: nothing to fetch from
    const base = ['run', '--config', config, '--host', '127.0.0.1', '--port', '0', '--metrics-host', '127.0.0.1', '--metrics-port', '0', '--auth', '--auth-redis', redis.url, '--drain-seconds', '0']

    const refused = await runCli([...base, '--ticket-keys-file', keysFile])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /relays take public keys only/)

    const proc = spawnCli([...base, '--ticket-keys-file', publicFile])
    cleanup.push(async () => { await proc.kill('SIGKILL') })
    const ready = await proc.waitForJson((o) => o.event === 'relay_ready')
    const addr = multiaddr(ready.addrs[0])
    const { api_key: apiKey } = await admin('POST', '/api/admin/accounts', { name: 'offline', tier: 'free' })
    const peer = await plainNode()
    const relayId = (await peer.dial(addr)).remotePeer
    const otherKey = JSON.parse((await runCli(['keys', 'generate'])).stdout)[0]
    const now = Math.floor(Date.now() / 1000)
    const foreign = await new SignJWT({ account: 'x', tier: 'free', sub: peer.peerId.toString(), jti: randomUUID(), iat: now, exp: now + 600 })
      .setProtectedHeader({ alg: 'EdDSA', kid: otherKey.kid }).sign(await importJWK(otherKey, 'EdDSA'))
    await assert.rejects(presentTicket(peer, relayId, foreign), (err: any) => err instanceof TicketRejectedError && err.reason === 'unknown_key')
    assert.equal((await hopRequest(peer, addr, RESERVE)).status, PERMISSION_DENIED)
    await presentTicket(peer, relayId, (await ticketFor(apiKey, peer.peerId.toString())).ticket)
    assert.equal((await hopRequest(peer, addr, RESERVE)).status, 100)
  })
})
