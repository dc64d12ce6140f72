import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ANNOTATIONS, computeDesired, RELAY_CONTAINER_SECURITY_CONTEXT, RELAY_METRICS_PORT, RELAY_POD_SECURITY_CONTEXT } from '@pos-relay/operator'
import { node, observe, pool } from './fixtures.ts'

describe('relay pods\' securityContext: the operator\'s setting replaces the default', () => {
  const nodes = [node('n1')]
  const p = pool({ replicas: 1 })

  it('by default a fixed non-root uid, RuntimeDefault seccomp, no privilege escalation, read-only root, no capabilities', () => {
    const pod = computeDesired(observe({ pool: p, nodes })).createPods[0]!
    assert.deepEqual(pod.spec!.securityContext, RELAY_POD_SECURITY_CONTEXT)
    assert.equal(pod.spec!.securityContext!.runAsUser, 10001)
    assert.deepEqual(pod.spec!.containers[0]!.securityContext, RELAY_CONTAINER_SECURITY_CONTEXT)
  })

  it('as OpenShift\'s restricted SCC wants it: no fixed uid, the rest kept; a different setting is a different pod template', () => {
    const restricted = { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }
    const container = { ...RELAY_CONTAINER_SECURITY_CONTEXT, seccompProfile: { type: 'RuntimeDefault' } }
    const pod = computeDesired(observe({ pool: p, nodes, defaults: { podSecurityContext: restricted, containerSecurityContext: container } })).createPods[0]!
    assert.deepEqual(pod.spec!.securityContext, restricted)
    assert.equal('runAsUser' in pod.spec!.securityContext!, false)
    assert.deepEqual(pod.spec!.containers[0]!.securityContext, container)
    // the template hash covers it, so changing the setting rolls the relays (one at a time, as any spec change)
    const before = computeDesired(observe({ pool: p, nodes })).createPods[0]!
    assert.notEqual(pod.metadata!.annotations![ANNOTATIONS.templateHash], before.metadata!.annotations![ANNOTATIONS.templateHash])
  })
})

describe('relay pods\' prometheus.io annotations: on by default, off when a PodMonitor scrapes them', () => {
  const nodes = [node('n1')]
  const p = pool({ replicas: 1 })
  it('default: scrape, port and path annotations; with scrapeAnnotations false none of them, the pool\'s own annotations kept', () => {
    const on = computeDesired(observe({ pool: p, nodes })).createPods[0]!.metadata!.annotations!
    assert.equal(on['prometheus.io/scrape'], 'true')
    assert.equal(on['prometheus.io/port'], String(RELAY_METRICS_PORT))
    const withOwn = pool({ replicas: 1, podAnnotations: { team: 'edge' } })
    const off = computeDesired(observe({ pool: withOwn, nodes, defaults: { scrapeAnnotations: false } })).createPods[0]!.metadata!.annotations!
    assert.equal(Object.keys(off).some((k) => k.startsWith('prometheus.io/')), false)
    assert.equal(off.team, 'edge')
  })
})
