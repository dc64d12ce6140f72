/**
 * The relay's ticket protocol against a peer that presents tickets over and
 * over: past the per-peer limit it is refused with `rate_limited` and nothing
 * more is verified (verification is the CPU an attacker would spend ours on).
 * Real libp2p nodes on loopback, a real verifier with real Ed25519 keys.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { generateTicketKey, TicketIssuer, TicketVerifier } from '@pos-relay/accounts'
import { presentTicket, TicketRejectedError } from '@pos-relay/client'
import { RelayMetrics, SampledLog, TicketGate } from '@pos-relay/relay'
import { createLogger } from '@pos-relay/shared'
import { yamux } from '@pos-relay/shared/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'

const node = async (): Promise<Libp2p> => await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
})

describe('ticket presentations are rate limited per peer', () => {
  const nodes: Libp2p[] = []
  after(async () => { for (const n of nodes) await n.stop() })

  it('past the limit: rejected with rate_limited, not verified; a valid ticket before it was accepted', async () => {
    const issuer = await TicketIssuer.create({ keys: [await generateTicketKey()] })
    const real = new TicketVerifier({ jwks: issuer.jwks() })
    let verified = 0
    const verifier = { verify: async (token: string, peer: string) => { verified++; return await real.verify(token, peer) } }
    const logger = createLogger({ name: 'relay', level: 'silent' })
    const metrics = new RelayMetrics()
    const relay = await node()
    nodes.push(relay)
    const gate = new TicketGate({
      verifier,
      revocations: { isRevoked: async () => false, subscribe: () => () => {} },
      tiers: { free: { name: 'free', max_reservations: 2, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 } },
      metrics,
      logger,
      denials: new SampledLog(logger),
      onRevoked: () => {},
      presentationsPerMinute: { peer: 3, ip: 100 }
    })
    await gate.start(relay)
    const client = await node()
    nodes.push(client)
    await client.dial(relay.getMultiaddrs()[0]!)
    const ticket = (await issuer.issue({ account: 'acct', tier: 'free', peer: client.peerId.toString() })).ticket
    const outcomes: string[] = []
    for (let i = 0; i < 6; i++) {
      outcomes.push(await presentTicket(client, relay.peerId, ticket).then(() => 'OK', (err) => err instanceof TicketRejectedError ? err.reason : String(err)))
    }
    assert.deepEqual(outcomes, ['OK', 'OK', 'OK', 'rate_limited', 'rate_limited', 'rate_limited'])
    assert.equal(verified, 3, 'presentations over the limit are not verified')
    assert.match(await metrics.registry.metrics(), /pos_relay_tickets_total\{result="rate_limited"\} 3/)
  })
})

describe('revocations delivered to the relay', () => {
  const nodes: Libp2p[] = []
  after(async () => { for (const n of nodes) await n.stop() })

  it('counts each by kind and whether a holder here lost its reservation (pos_relay_revocations_total), without account labels', async () => {
    const issuer = await TicketIssuer.create({ keys: [await generateTicketKey()] })
    const logger = createLogger({ name: 'relay', level: 'silent' })
    const metrics = new RelayMetrics()
    let deliver: (evt: { kind: 'account' | 'ticket', id: string }) => void = () => {}
    const revoked: string[] = []
    const relay = await node()
    nodes.push(relay)
    const gate = new TicketGate({
      verifier: new TicketVerifier({ jwks: issuer.jwks() }),
      revocations: { isRevoked: async () => false, subscribe: (handler) => { deliver = handler; return () => {} } },
      tiers: { free: { name: 'free', max_reservations: 2, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 } },
      metrics,
      logger,
      denials: new SampledLog(logger),
      onRevoked: (peer) => { revoked.push(peer.toString()) }
    })
    await gate.start(relay)
    const client = await node()
    nodes.push(client)
    await client.dial(relay.getMultiaddrs()[0]!)
    const t = await issuer.issue({ account: 'acct-revoked', tier: 'free', peer: client.peerId.toString() })
    await presentTicket(client, relay.peerId, t.ticket)
    deliver({ kind: 'ticket', id: 'some-other-jti' })
    deliver({ kind: 'account', id: 'acct-revoked' })
    deliver({ kind: 'account', id: 'acct-revoked' }) // already gone here
    assert.deepEqual(revoked, [client.peerId.toString()])
    const text = await metrics.registry.metrics()
    for (const line of ['kind="ticket",result="not_held"} 1', 'kind="account",result="applied"} 1', 'kind="account",result="not_held"} 1', 'kind="ticket",result="applied"} 0']) {
      assert.ok(text.includes(`pos_relay_revocations_total{${line}`), line)
    }
    assert.ok(!text.includes('acct-revoked'), 'no account id in the metrics')
  })
})
