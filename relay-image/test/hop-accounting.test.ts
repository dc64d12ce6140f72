/**
 * HopAccounting on its own, with a hand-driven clock and a recording meter:
 * what each account is billed for reservations, circuits and bytes.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { HopAccounting } from '@pos-relay/relay'
import type { PeerId } from '@libp2p/interface'

const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

function setup (withAccounts = true) {
  let now = 1_000_000
  const metered: Array<[string, Record<string, number>]> = []
  const released: string[] = []
  const bytes = { toDestination: 0, toSource: 0 }
  const meteredBytes = { toDestination: 0, toSource: 0 }
  const accounting = new HopAccounting({
    bytes: { toDestination: { inc: (n) => { bytes.toDestination += n } }, toSource: { inc: (n) => { bytes.toSource += n } } },
    meteredBytes: { toDestination: { inc: (n) => { meteredBytes.toDestination += n } }, toSource: { inc: (n) => { meteredBytes.toSource += n } } },
    ...(withAccounts ? { accounts: { meter: (account, delta) => { metered.push([account, delta as Record<string, number>]) }, releaseReservation: (account) => { released.push(account) } } } : {}),
    now: () => now
  })
  return { accounting, metered, released, bytes, meteredBytes, advance: (ms: number) => { now += ms } }
}

describe('HopAccounting', () => {
  it('bills a reservation from when it was made to when it ends, once, and gives its slot back', async () => {
    const { accounting, metered, released, advance } = setup()
    const peer = await newPeer()
    accounting.reservationMade(peer, 'acct')
    advance(5000)
    accounting.reservationMade(peer, 'acct') // a refresh: billed from the first
    advance(5000)
    accounting.reservationEnded(peer)
    accounting.reservationEnded(peer)
    assert.deepEqual(metered, [['acct', { reservation_seconds: 10 }]])
    assert.deepEqual(released, ['acct'])
  })

  it('counts bytes each way for every circuit, and meters them only to a circuit\'s account', () => {
    const { accounting, metered, bytes, meteredBytes } = setup()
    const paid = accounting.circuitOpened('acct')
    const free = accounting.circuitOpened(undefined)
    accounting.circuitBytes(paid).toDestination(100)
    accounting.circuitBytes(paid).toSource(7)
    accounting.circuitBytes(free).toDestination(50)
    assert.deepEqual(bytes, { toDestination: 150, toSource: 7 })
    assert.deepEqual(metered, [['acct', { circuits: 1 }], ['acct', { bytes_to_destination: 100 }], ['acct', { bytes_to_source: 7 }]])
    assert.deepEqual(meteredBytes, { toDestination: 100, toSource: 7 }, 'pos_relay_metered_bytes_total counts what is metered, not what is relayed')
  })

  it('without accounts only the byte counters count', () => {
    const { accounting, metered, bytes, meteredBytes } = setup(false)
    const c = accounting.circuitOpened('acct')
    accounting.circuitBytes(c).toSource(3)
    accounting.circuitEnded(c)
    assert.deepEqual(bytes, { toDestination: 0, toSource: 3 })
    assert.deepEqual(metered, [])
    assert.deepEqual(meteredBytes, { toDestination: 0, toSource: 0 })
  })

  it('a tick bills circuit-seconds and reservation-seconds up to now; the end bills the rest', async () => {
    const { accounting, metered, released, advance } = setup()
    const [kept, expired, revoked] = [await newPeer(), await newPeer(), await newPeer()]
    for (const p of [kept, expired, revoked]) accounting.reservationMade(p, `acct-${p === kept ? 'kept' : p === expired ? 'expired' : 'revoked'}`)
    const circuit = { ...accounting.circuitOpened('acct-kept'), id: 1 }
    metered.length = 0
    advance(2000)
    const ended: PeerId[] = []
    accounting.tickReservations((p) => !p.equals(expired), (p) => !p.equals(revoked), (p) => { ended.push(p); accounting.reservationEnded(p) })
    const byAccount = accounting.tickCircuits([circuit, { lastBilled: 0 }])
    assert.deepEqual([...byAccount.keys()], ['acct-kept'])
    assert.equal(byAccount.get('acct-kept')![0], circuit)
    assert.deepEqual(ended, [revoked])
    assert.deepEqual(released.sort(), ['acct-expired', 'acct-revoked'])
    assert.deepEqual(metered, [
      ['acct-kept', { reservation_seconds: 2 }],
      ['acct-expired', { reservation_seconds: 2 }],
      ['acct-revoked', { reservation_seconds: 2 }],
      ['acct-kept', { circuit_seconds: 2 }]
    ])
    metered.length = 0
    advance(500)
    accounting.circuitEnded(circuit)
    assert.deepEqual(metered, [['acct-kept', { circuit_seconds: 0.5 }]])
  })
})
