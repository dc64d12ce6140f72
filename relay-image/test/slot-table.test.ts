/**
 * The relay-wide counts of `--workers N`: the primary's SlotTable, and a
 * worker's RemoteSlots failing closed once its IPC channel is gone.
 * (workers.test.ts runs both across a real cluster.)
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RemoteSlots, SlotTable } from '@pos-relay/relay'
import { logger } from './relay-harness.ts'

const limits = { max_circuits: 2, peer_max_circuits: 0, ip_max_circuits: 0 }

test('SlotTable: a peer counts once, however many workers hold it; a worker that exits frees its slots', () => {
  const t = new SlotTable()
  assert.equal(t.takeReservation(0, 'a', 2), true)
  assert.equal(t.takeReservation(0, 'a', 2), true, 'a refresh keeps its slot')
  assert.equal(t.takeReservation(1, 'a', 2), true, 'the same peer on another worker')
  assert.equal(t.reservationCount, 1)
  assert.equal(t.takeReservation(1, 'b', 2), true)
  assert.equal(t.takeReservation(0, 'c', 2), false)
  // a's reservation ends on worker 0: worker 1 still holds it
  t.releaseReservation(0, 'a')
  assert.equal(t.takeReservation(0, 'c', 2), false)
  t.releaseReservation(1, 'a')
  assert.equal(t.takeReservation(0, 'c', 2), true)
  assert.equal(t.takeCircuit(0, 1, 'x', '10.0.0.1', limits).ok, true)
  assert.equal(t.takeCircuit(1, 1, 'y', '10.0.0.2', limits).ok, true)
  assert.deepEqual(t.takeCircuit(1, 2, 'z', '10.0.0.3', limits), { ok: false, reason: 'circuit_limit' })
  t.releaseCircuit(0, 1)
  t.releaseCircuit(0, 1)
  assert.equal(t.circuitCount, 1, 'a release counts once')
  t.dropWorker(1)
  assert.equal(t.circuitCount, 0)
  assert.equal(t.reservationCount, 1, 'worker 0 still holds c')
})

test('RemoteSlots: with the channel to the primary closed, reservations and circuits are refused (fail closed)', async () => {
  const sent: unknown[] = []
  let connected = true
  const slots = new RemoteSlots({ send: (m) => { sent.push(m) }, connected: () => connected, logger })
  const pending = slots.takeCircuit('x', undefined, limits)
  assert.equal(sent.length, 1)
  // the channel closes before the answer
  connected = false
  slots.disconnected()
  assert.deepEqual(await pending, { ok: false, reason: 'primary_unreachable' })
  assert.equal(await slots.takeReservation('a', 10), 'primary_unreachable')
  assert.deepEqual(await slots.takeCircuit('x', undefined, limits), { ok: false, reason: 'primary_unreachable' })
  assert.equal(sent.length, 1, 'nothing is sent on a closed channel')
})
