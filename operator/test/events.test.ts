// The Event aggregator's decisions (pure, clock injected); the recorder's API
// calls are tested against a real API server in operator.integration.test.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { EventAggregator, REPORTING_CONTROLLER, type Decision, type EventInput } from '@pos-relay/operator'

const T0 = Date.parse('2026-01-01T00:00:00Z')
const pool = { apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', name: 'relays', namespace: 'apps', uid: 'u1' }
const ev = (over: Partial<EventInput> = {}): EventInput => ({ regarding: pool, type: 'Warning', reason: 'ReconcileError', action: 'Reconcile', note: 'registry: connection refused', ...over })
const agg = (opts = {}): EventAggregator => new EventAggregator(REPORTING_CONTROLLER, 'op-1', opts)
const create = (d: Decision): Record<string, any> => { assert.equal(d.op, 'create'); return (d as any).event }

describe('EventAggregator', () => {
  it('a first event is created as events.k8s.io/v1 with the reporting controller, instance and object references', () => {
    const e = create(agg().observe(ev({ related: { apiVersion: 'v1', kind: 'Pod', name: 'relays-0', namespace: 'apps', uid: 'p0' } }), T0))
    assert.equal(e.apiVersion, 'events.k8s.io/v1')
    assert.equal(e.kind, 'Event')
    assert.equal(e.metadata.namespace, 'apps')
    assert.match(e.metadata.name, /^relays\.[0-9a-f]+$/)
    assert.equal(e.eventTime, '2026-01-01T00:00:00.000000Z')
    assert.equal(e.reportingController, 'pos-relay.io/operator')
    assert.equal(e.reportingInstance, 'op-1')
    assert.deepEqual(e.regarding, pool)
    assert.equal(e.related.name, 'relays-0')
    assert.deepEqual([e.type, e.reason, e.action, e.note], ['Warning', 'ReconcileError', 'Reconcile', 'registry: connection refused'])
    assert.equal(e.series, undefined)
  })

  it('the same event again becomes a series: written at once when the flush interval has passed, else deferred and folded', () => {
    const a = agg({ flushIntervalMs: 30_000 })
    const first = create(a.observe(ev(), T0))
    const d1 = a.observe(ev(), T0 + 1000)
    assert.deepEqual(d1.op, 'defer')
    assert.equal((d1 as any).at, T0 + 30_000)
    assert.equal(a.observe(ev(), T0 + 2000).op, 'defer')
    assert.equal(a.observe(ev(), T0 + 3000).op, 'defer')
    const flushed = a.flush((d1 as any).key, T0 + 30_000)
    assert.deepEqual(flushed, { op: 'series', key: (d1 as any).key, name: first.metadata.name, namespace: 'apps', count: 4, lastObservedTime: '2026-01-01T00:00:03.000000Z' })
    assert.equal(a.flush((d1 as any).key, T0 + 31_000), undefined, 'nothing new to write')
    const later = a.observe(ev(), T0 + 61_000)
    assert.equal(later.op, 'series', 'flush interval passed: written at once')
    assert.equal((later as any).count, 5)
  })

  it('a reconcile loop failing every 100 ms for 5 minutes is one Event and at most one write per 30 s', () => {
    const a = agg()
    let creates = 0
    let writes = 0
    for (let t = 0; t < 300_000; t += 100) {
      const d = a.observe(ev(), T0 + t)
      if (d.op === 'create') creates++
      if (d.op === 'series') writes++
    }
    assert.equal(creates, 1)
    assert.ok(writes <= 10, `${writes} series writes`)
  })

  it('different notes, reasons, types, related objects or pools are different events', () => {
    const a = agg()
    create(a.observe(ev(), T0))
    for (const other of [ev({ note: 'other' }), ev({ reason: 'Other' }), ev({ type: 'Normal' }), ev({ action: 'Other' }), ev({ related: { apiVersion: 'v1', kind: 'Pod', name: 'x' } }), ev({ regarding: { ...pool, uid: 'u2' } })]) {
      assert.equal(a.observe(other, T0 + 1).op, 'create', JSON.stringify(other))
    }
  })

  it('after the series window (6 min without it) the same event starts a new Event', () => {
    const a = agg()
    const first = create(a.observe(ev(), T0))
    a.observe(ev(), T0 + 60_000)
    const again = create(a.observe(ev(), T0 + 60_000 + 6 * 60_000))
    assert.notEqual(again.metadata.name, first.metadata.name)
  })

  it('new events per object are rate limited: a burst of 25, then one per 5 minutes; other objects are not affected', () => {
    const a = agg()
    const results = Array.from({ length: 30 }, (_, i) => a.observe(ev({ note: `n${i}` }), T0).op)
    assert.deepEqual(results.filter((r) => r === 'create').length, 25)
    assert.deepEqual(results.slice(25), ['drop', 'drop', 'drop', 'drop', 'drop'])
    assert.equal(a.observe(ev({ regarding: { ...pool, name: 'other', uid: 'u9' }, note: 'x' }), T0).op, 'create')
    assert.equal(a.observe(ev({ note: 'n30' }), T0 + 4 * 60_000).op, 'drop')
    assert.equal(a.observe(ev({ note: 'n31' }), T0 + 5 * 60_000).op, 'create')
    assert.equal(a.observe(ev({ note: 'n32' }), T0 + 5 * 60_000 + 1).op, 'drop')
    // repeats of an existing event are series updates, not new events: never dropped by the bucket
    assert.notEqual(a.observe(ev({ note: 'n0' }), T0 + 5 * 60_000 + 2).op, 'drop')
  })

  it('a failed create is forgotten (the next one creates again); an expired Event starts anew', () => {
    const a = agg()
    const d = a.observe(ev(), T0) as Extract<Decision, { op: 'create' }>
    a.forget(d.key)
    assert.equal(a.observe(ev(), T0 + 1).op, 'create')
    const d2 = a.observe(ev({ note: 'y' }), T0)
    a.expired((d2 as any).key)
    assert.equal(a.observe(ev({ note: 'y' }), T0 + 60_000).op, 'create')
  })

  it('cuts the note to 1 KiB and reason/action to 128 bytes (the API\'s limits), and stays bounded in memory', () => {
    const e = create(agg().observe(ev({ note: 'é'.repeat(2000), reason: 'R'.repeat(200) }), T0))
    assert.ok(Buffer.byteLength(e.note) <= 1024)
    assert.ok(e.note.endsWith('...'))
    assert.equal(e.reason.length, 128)
    const a = agg({ maxEntries: 10, burst: 1000 })
    for (let i = 0; i < 100; i++) a.observe(ev({ note: `n${i}` }), T0)
    assert.equal(a.size, 10)
  })

  it('two events in the same millisecond get distinct names', () => {
    const a = agg()
    const x = create(a.observe(ev({ note: 'a' }), T0))
    const y = create(a.observe(ev({ note: 'b' }), T0))
    assert.notEqual(x.metadata.name, y.metadata.name)
  })
})
