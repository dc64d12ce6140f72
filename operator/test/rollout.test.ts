import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { maxUnavailable } from '@pos-relay/operator'
import { compute, identity, node, pool, relayPod } from './fixtures.ts'

describe('maxUnavailable: spec.updateStrategy.maxUnavailable as a number of relays', () => {
  it('default 1; a number as given, at least 1; a percentage of the desired relays rounded down, at least 1', () => {
    assert.equal(maxUnavailable(undefined, 10), 1)
    assert.equal(maxUnavailable(3, 10), 3)
    assert.equal(maxUnavailable(0, 10), 1, 'relays on a hostPort cannot surge: 0 would never roll')
    assert.equal(maxUnavailable('25%', 10), 2)
    assert.equal(maxUnavailable('100%', 4), 4)
    assert.equal(maxUnavailable('10%', 4), 1)
    assert.equal(maxUnavailable('lots', 4), 1, 'what the CEL rule would refuse falls back to the default')
  })
})

describe('rollouts honour spec.updateStrategy.maxUnavailable', () => {
  const nodes = ['n1', 'n2', 'n3', 'n4'].map((n) => node(n))
  const old = pool({ replicas: 4 })
  const secrets = [0, 1, 2, 3].map((s) => identity(old, s, `n${s + 1}`))
  const ready = [0, 1, 2, 3].map((s) => relayPod(old, s, `n${s + 1}`))
  const outdated = (d: any): string[] => d.deletePods.filter((x: any) => x.reason === 'outdated').map((x: any) => x.name).sort()

  it('default: one Ready relay at a time', () => {
    assert.deepEqual(outdated(compute({ pool: pool({ replicas: 4, image: 'pos-relay:v2' }), nodes, pods: ready, secrets })), ['edge-0'])
  })

  it('2, or "50%" of 4: two at a time; "100%": all at once', () => {
    for (const value of [2, '50%']) {
      assert.deepEqual(outdated(compute({ pool: pool({ replicas: 4, image: 'pos-relay:v2', updateStrategy: { maxUnavailable: value } }), nodes, pods: ready, secrets })), ['edge-0', 'edge-1'], String(value))
    }
    assert.deepEqual(outdated(compute({ pool: pool({ replicas: 4, image: 'pos-relay:v2', updateStrategy: { maxUnavailable: '100%' } }), nodes, pods: ready, secrets })), ['edge-0', 'edge-1', 'edge-2', 'edge-3'])
  })

  it('relays already unavailable count against it: with 2 allowed and one slot being replaced, one more goes', () => {
    const changed = pool({ replicas: 4, image: 'pos-relay:v2', updateStrategy: { maxUnavailable: 2 } })
    // slot 0 is gone (being replaced), slots 1-3 are outdated and Ready
    const d = compute({ pool: changed, nodes, pods: ready.slice(1), secrets })
    assert.deepEqual(outdated(d), ['edge-1'])
    assert.deepEqual(d.createPods.map((p: any) => p.metadata.name), ['edge-0'])
    // two unavailable already (a crashed relay besides the one being replaced): none more
    const crashed = [relayPod(old, 1, 'n2', 'crashloop'), ready[2], ready[3]]
    assert.deepEqual(outdated(compute({ pool: changed, nodes, pods: crashed, secrets })), ['edge-1'], 'the not-Ready outdated relay is replaced at once, as before, and no Ready one')
  })
})
