/**
 * Fleet-wide rate limits: two relay processes on one real Redis, raw
 * Circuit Relay v2 HOP requests from one peer, and Redis killed and
 * restarted underneath.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { startRedis, waitFor, type RedisServer, scrapeMetric } from '@pos-relay/testing'
import { createLibp2p, type Libp2p } from 'libp2p'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { hopRequest, RESERVE } from '../../relay-image/test/hop-client.ts'
import { sendToSink, serveSink } from './helpers/transfer.ts'
import { startLocalRelay, type LocalRelay } from './helpers/relay.ts'

const OK = 100
const RESOURCE_LIMIT_EXCEEDED = 201
const N = 5

async function client (): Promise<Libp2p> {
  return await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
}

const metric = scrapeMetric

describe('rate limits shared through Redis', { timeout: 120_000 }, () => {
  let redis: RedisServer
  let dir: string
  const relays: LocalRelay[] = []
  const nodes: Libp2p[] = []

  before(async () => {
    redis = await startRedis()
    dir = await mkdtemp(join(tmpdir(), 'pos-relay-rl-'))
    for (const name of ['r1', 'r2']) {
      relays.push(await startLocalRelay({ dir, name, args: ['--redis', redis.url, '--peer-reservations-per-minute', String(N), '--peer-circuits-per-minute', String(N)] }))
    }
    await waitFor(async () => await metric(relays[0]!.metricsPort, /^pos_relay_rate_limit_redis_up (\d)/m) === 1, { timeoutMs: 5000 })
  })

  after(async () => {
    for (const n of nodes) await n.stop()
    for (const r of relays) await r.proc.kill('SIGKILL')
    await redis?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  /** RESERVE alternately on both relays `count` times; returns the statuses */
  async function reserveAlternately (node: Libp2p, count: number, only?: number): Promise<number[]> {
    const statuses: number[] = []
    for (let i = 0; i < count; i++) {
      const relay = relays[only ?? i % 2]!
      statuses.push((await hopRequest(node, relay.addr, RESERVE)).status!)
    }
    return statuses
  }

  it(`lets exactly ${N} reservations per peer per minute through across two relays, then RESOURCE_LIMIT_EXCEEDED`, async () => {
    const node = await client(); nodes.push(node)
    const statuses = await reserveAlternately(node, N + 3)
    assert.deepEqual(statuses, [...Array(N).fill(OK), ...Array(3).fill(RESOURCE_LIMIT_EXCEEDED)])
    const denied = await metric(relays[0]!.metricsPort, /pos_relay_denials_total\{reason="peer_reservation_rate"\} (\d+)/) +
      await metric(relays[1]!.metricsPort, /pos_relay_denials_total\{reason="peer_reservation_rate"\} (\d+)/)
    assert.equal(denied, 3)
    // another peer has its own budget
    const other = await client(); nodes.push(other)
    assert.equal((await reserveAlternately(other, 1))[0], OK)
  })

  it('keeps limiting locally while Redis is down, without stalling, and shares again when it is back', async () => {
    // a circuit that is open when Redis dies must keep flowing
    const relayed = async (): Promise<Libp2p> => await createLibp2p({ transports: [tcp(), circuitRelayTransport()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
    const listener = await relayed(); const dialer = await relayed(); nodes.push(listener, dialer)
    await serveSink(listener)
    await (listener as any).components.transportManager.listen([relays[0]!.addr.encapsulate('/p2p-circuit')])
    const circuit = await dialer.dial(relays[0]!.addr.encapsulate(`/p2p-circuit/p2p/${listener.peerId}`))

    await redis.kill()
    await waitFor(async () => await metric(relays[0]!.metricsPort, /^pos_relay_rate_limit_redis_up (\d)/m) === 0, { timeoutMs: 5000, message: 'relay did not notice Redis going away' })
    // each relay now limits alone: N on relay 1 for a fresh peer, then refused
    const a = await client(); nodes.push(a)
    assert.deepEqual(await reserveAlternately(a, N + 1, 0), [...Array(N).fill(OK), RESOURCE_LIMIT_EXCEEDED])
    assert.ok(await metric(relays[0]!.metricsPort, /^pos_relay_rate_limit_fallback_total (\d+)/m) >= N)
    assert.equal((await fetch(`http://127.0.0.1:${relays[0]!.metricsPort}/healthz`)).status, 200)
    const { sent, received } = await sendToSink(circuit, 2 * 1024 * 1024)
    assert.deepEqual(received, sent, 'the open circuit stopped carrying data when Redis went away')

    await redis.restart()
    await waitFor(async () => await metric(relays[0]!.metricsPort, /^pos_relay_rate_limit_redis_up (\d)/m) === 1 &&
      await metric(relays[1]!.metricsPort, /^pos_relay_rate_limit_redis_up (\d)/m) === 1, { timeoutMs: 15_000, message: 'relays did not reconnect to Redis' })
    const b = await client(); nodes.push(b)
    assert.deepEqual(await reserveAlternately(b, N + 1), [...Array(N).fill(OK), RESOURCE_LIMIT_EXCEEDED])
  })
})
