import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { findCondition, k8sTime, nextCondition, setConditions } from '@pos-relay/operator'

const T0 = Date.parse('2026-01-01T00:00:00.750Z')
const T1 = T0 + 90_000

describe('conditions', () => {
  it('k8sTime is RFC 3339 UTC in whole seconds', () => {
    assert.equal(k8sTime(T0), '2026-01-01T00:00:00Z')
  })

  it('a new condition gets the current time and the generation', () => {
    const c = nextCondition(undefined, { type: 'Ready', status: 'False', reason: 'RelaysNotReady', message: '0/2' }, 3, T0)
    assert.deepEqual(c, { type: 'Ready', status: 'False', lastTransitionTime: '2026-01-01T00:00:00Z', reason: 'RelaysNotReady', message: '0/2', observedGeneration: 3 })
  })

  it('same status with a new reason/message keeps lastTransitionTime but stamps the new generation', () => {
    const prev = nextCondition(undefined, { type: 'Ready', status: 'False', reason: 'RelaysNotReady', message: '0/2' }, 1, T0)
    const c = nextCondition(prev, { type: 'Ready', status: 'False', reason: 'RelaysNotRegistered', message: '1/2' }, 2, T1)
    assert.equal(c.lastTransitionTime, prev.lastTransitionTime)
    assert.equal(c.observedGeneration, 2)
    assert.equal(c.reason, 'RelaysNotRegistered')
    assert.equal(c.message, '1/2')
  })

  it('a status flip moves lastTransitionTime', () => {
    const prev = nextCondition(undefined, { type: 'Ready', status: 'False', reason: 'A', message: '' }, 1, T0)
    const c = nextCondition(prev, { type: 'Ready', status: 'True', reason: 'B', message: '' }, 1, T1)
    assert.equal(c.lastTransitionTime, '2026-01-01T00:01:30Z')
    const back = nextCondition(c, { type: 'Ready', status: 'Unknown', reason: 'C', message: '' }, 1, T1 + 5000)
    assert.equal(back.lastTransitionTime, '2026-01-01T00:01:35Z')
  })

  it('setConditions keeps the input order and conditions of other types', () => {
    const prev = [
      { type: 'Foreign', status: 'True' as const, lastTransitionTime: '2025-01-01T00:00:00Z', reason: 'X', message: '' },
      { type: 'Ready', status: 'True' as const, lastTransitionTime: '2025-06-01T00:00:00Z', reason: 'AllRelaysReady', message: '', observedGeneration: 1 }
    ]
    const out = setConditions(prev, [
      { type: 'Ready', status: 'True', reason: 'AllRelaysReady', message: '2/2' },
      { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' }
    ], 5, T1)
    assert.deepEqual(out.map((c) => c.type), ['Ready', 'Degraded', 'Foreign'])
    assert.equal(findCondition(out, 'Ready')!.lastTransitionTime, '2025-06-01T00:00:00Z')
    assert.equal(findCondition(out, 'Ready')!.observedGeneration, 5)
    assert.equal(findCondition(out, 'Degraded')!.lastTransitionTime, '2026-01-01T00:01:30Z')
    assert.deepEqual(findCondition(out, 'Foreign'), prev[0])
  })

  it('very long messages are truncated to the CRD limit', () => {
    const c = nextCondition(undefined, { type: 'Degraded', status: 'True', reason: 'RelaysFailing', message: 'x'.repeat(40_000) }, 1, T0)
    assert.equal(c.message.length, 32_768)
  })
})
