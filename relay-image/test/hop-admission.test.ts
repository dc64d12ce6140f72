/**
 * HopAdmission on its own: stubbed rate limiter, accounts and connections
 * (no libp2p node), one rule at a time. What each refusal answers and counts.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_TIERS, type Tier } from '@pos-relay/accounts'
import { DEFAULT_LIMITS, HopAdmission, HopStatus, type AdmissionAccounts, type HopAdmissionOptions } from '@pos-relay/relay'
import type { Connection, PeerId } from '@libp2p/interface'

const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
const tier = (over: Partial<Tier> = {}): Tier => ({ ...DEFAULT_TIERS.free!, monthly_bytes: 0, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, ...over })

/** a connection from `peer` at `addr` (only what admission reads) */
const connectionFrom = (peer: PeerId, addr = '/ip4/10.0.0.1/tcp/4001'): Connection => ({ remotePeer: peer, remoteAddr: multiaddr(addr) }) as unknown as Connection

interface Stubs { denyRates: Set<string>, draining: boolean, reserved: Set<string>, exhausted: boolean, released: string[] }

function admission (limits: Partial<HopAdmissionOptions['limits']> = {}, accounts?: Partial<AdmissionAccounts>): { admission: HopAdmission, stubs: Stubs } {
  const stubs: Stubs = { denyRates: new Set(), draining: false, reserved: new Set(), exhausted: false, released: [] }
  const full: AdmissionAccounts | undefined = accounts == null
    ? undefined
    : {
        identify: () => undefined,
        admitReservation: async () => true,
        releaseReservation: (account) => { stubs.released.push(account) },
        remainingBytes: async () => Infinity,
        ...accounts
      }
  return {
    stubs,
    admission: new HopAdmission({
      limits: { ...DEFAULT_LIMITS, circuit_data_limit_bytes: 1000, circuit_duration_seconds: 60, ...limits },
      isDraining: () => stubs.draining,
      rateLimiter: { allow: async (kind) => !stubs.denyRates.has(kind) },
      ...(full != null ? { accounts: full } : {}),
      hasReservation: (peer) => stubs.reserved.has(peer.toString()),
      buffersExhausted: () => stubs.exhausted
    })
  }
}

describe('HopAdmission: RESERVE', () => {
  it('admits with the relay\'s data limit when nothing refuses', async () => {
    const { admission: a } = admission()
    const r = await a.reserve(await newPeer())
    assert.ok(r.ok)
    assert.deepEqual(r.limit, { data: 1000n })
    assert.equal(r.who, undefined)
  })

  it('refuses while draining (RESERVATION_REFUSED, draining) and over the peer rate (RESOURCE_LIMIT_EXCEEDED)', async () => {
    const { admission: a, stubs } = admission()
    stubs.draining = true
    assert.deepEqual(await a.reserve(await newPeer()), { ok: false, status: HopStatus.RESERVATION_REFUSED, reason: 'draining', result: 'refused' })
    stubs.draining = false
    stubs.denyRates.add('peer_reservation')
    assert.deepEqual(await a.reserve(await newPeer()), { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'peer_reservation_rate', result: 'refused' })
  })

  it('with accounts: no ticket is PERMISSION_DENIED; over the account\'s reservations RESOURCE_LIMIT_EXCEEDED; a refresh is not counted again', async () => {
    const paid = tier({ circuit_data_limit_bytes: 5000 })
    let admits = 0
    const known = await newPeer()
    const { admission: a, stubs } = admission({}, {
      identify: (p) => p.equals(known) ? { account: 'acct', tier: paid } : undefined,
      admitReservation: async () => { admits++; return admits <= 1 }
    })
    assert.deepEqual(await a.reserve(await newPeer()), { ok: false, status: HopStatus.PERMISSION_DENIED, reason: 'no_ticket', result: 'denied' })
    const first = await a.reserve(known)
    assert.ok(first.ok)
    assert.deepEqual(first.limit, { data: 5000n }, 'the tier\'s data limit')
    assert.deepEqual(await a.reserve(known), { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'account_reservations', result: 'refused' })
    stubs.reserved.add(known.toString())
    const refresh = await a.reserve(known)
    assert.ok(refresh.ok)
    assert.equal(admits, 2, 'a refresh does not ask for another fleet-wide slot')
    refresh.release()
    assert.deepEqual(stubs.released, [], 'nor gives one back')
    first.release()
    assert.deepEqual(stubs.released, ['acct'])
  })
})

describe('HopAdmission: CONNECT', () => {
  it('refuses a relayed source, and any CONNECT while buffers are at the budget', async () => {
    const { admission: a, stubs } = admission()
    assert.deepEqual(await a.connect(connectionFrom(await newPeer(), '/ip4/10.0.0.1/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit')), { ok: false, status: HopStatus.PERMISSION_DENIED, reason: 'relayed_source' })
    stubs.exhausted = true
    assert.deepEqual(await a.connect(connectionFrom(await newPeer())), { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'buffer_budget' })
  })

  it('takes a circuit slot before its first await, so concurrent CONNECTs cannot all pass max_circuits; a refusal gives its slot back', async () => {
    const { admission: a, stubs } = admission({ max_circuits: 1 })
    const [p1, p2] = [await newPeer(), await newPeer()]
    const both = [a.connect(connectionFrom(p1)), a.connect(connectionFrom(p2))]
    assert.equal(a.circuitSlots, 1, 'taken synchronously')
    const [first, second] = await Promise.all(both)
    if (first?.ok !== true) throw new Error('the first CONNECT was refused')
    assert.deepEqual(second, { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'circuit_limit' })
    first.releaseSlot()
    assert.equal(a.circuitSlots, 0)
    stubs.denyRates.add('peer_circuit')
    assert.deepEqual(await a.connect(connectionFrom(p1)), { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'peer_circuit_rate' })
    assert.equal(a.circuitSlots, 0, 'the refused CONNECT gave its slot back')
  })

  it('per-peer and per-IP caps', async () => {
    const { admission: a } = admission({ peer_max_circuits: 1, ip_max_circuits: 2 })
    const p = await newPeer()
    assert.ok((await a.connect(connectionFrom(p))).ok)
    assert.deepEqual(await a.connect(connectionFrom(p)), { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'peer_circuit_limit' })
    assert.ok((await a.connect(connectionFrom(await newPeer()))).ok)
    assert.deepEqual(await a.connect(connectionFrom(await newPeer())), { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'ip_circuit_limit' })
    assert.ok((await a.connect(connectionFrom(await newPeer(), '/ip4/10.0.0.2/tcp/4001'))).ok, 'another IP')
  })

  it('with accounts: no ticket, the account rate, and a used-up quota refuse; the quota left bounds the circuit\'s data limit', async () => {
    const known = await newPeer()
    let remaining = 400
    const { admission: a, stubs } = admission({}, {
      identify: (p) => p.equals(known) ? { account: 'acct', tier: tier({ monthly_bytes: 10_000, circuit_duration_seconds: 30 }) } : undefined,
      remainingBytes: async () => remaining
    })
    assert.deepEqual(await a.connect(connectionFrom(await newPeer())), { ok: false, status: HopStatus.PERMISSION_DENIED, reason: 'no_ticket' })
    const bound = await a.connect(connectionFrom(known))
    assert.ok(bound.ok)
    assert.deepEqual(bound.limit, { data: 400n }, 'the quota left, under the relay\'s 1000')
    assert.equal(bound.quotaBound, true)
    assert.equal(bound.account, 'acct')
    assert.equal(bound.durationSeconds, 30, 'the tier\'s duration')
    bound.releaseSlot()
    remaining = 5000
    const relayBound = await a.connect(connectionFrom(known))
    assert.ok(relayBound.ok)
    assert.deepEqual(relayBound.limit, { data: 1000n })
    assert.equal(relayBound.quotaBound, false)
    relayBound.releaseSlot()
    remaining = 0
    assert.deepEqual(await a.connect(connectionFrom(known)), { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'quota' })
    assert.equal(await a.quotaUsedUp(known, 'acct'), true)
    remaining = 1
    assert.equal(await a.quotaUsedUp(known, 'acct'), false)
    stubs.denyRates.add('account_circuit')
    assert.deepEqual(await a.connect(connectionFrom(known)), { ok: false, status: HopStatus.RESOURCE_LIMIT_EXCEEDED, reason: 'account_circuit_rate' })
    assert.equal(a.circuitSlots, 0)
  })
})
