/**
 * What the operator writes into relay pods from a pool's spec (limits, rate limits, the Redis
 * URL by reference), checked against a real kube-apiserver and by running the pod's container
 * as the kubelet would; and the Event series the API server keeps. The control plane is the
 * one operator.integration.test.ts uses (operator-fixture.ts).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { EventRecorder, KubeClient, loadKubeConfig } from '@pos-relay/operator'
import { scrapeMetric } from '@pos-relay/testing'
import { api, runRelayContainer, tryApi, until, type OperatorProc } from './kube-helpers.ts'
import { NS, PODS, POOLS, startOperatorFixture, type OperatorFixture } from './operator-fixture.ts'

const CONFIGMAPS = `/api/v1/namespaces/${NS}/configmaps`

describe('operator: relay settings and Events against a real control plane', { timeout: 300_000 }, () => {
  let fx: OperatorFixture
  let cp: OperatorFixture['cp']
  let redis: OperatorFixture['redis']
  const operators: OperatorProc[] = []

  before(async () => {
    fx = await startOperatorFixture()
    ;({ cp, redis } = fx)
    operators.push(fx.operator)
  }, { timeout: 180_000 })

  after(async () => {
    for (const o of operators) await o.kill('SIGKILL')
    await fx?.stop()
  })

  it('rate limits: relay pods get the flags that need a restart, the limits ConfigMap the rest, and REDIS_URL from the registry\'s Secret; the relay runs with them, reloads a limits change in the same pod, and a restart field rolls it', async () => {
    const spec = {
      replicas: 1,
      hostPort: 7575,
      image: 'pos-relay:test',
      limits: { maxConnections: 900, maxPendingConnections: 32, handshakeTimeoutSeconds: 3, ipMaxConnections: 0 },
      rateLimits: { shared: true, ipConnectionsPerSecond: 7, peerReservationsPerMinute: 11, peerCircuitsPerMinute: 0 },
      discovery: { redisUrlSecretRef: { name: 'pos-relay-discovery' }, ttlSeconds: 10 }
    }
    await api(cp, 'POST', POOLS, { apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', metadata: { name: 'limited' }, spec })
    const pod = await until('limited-0', async () => { const r = await tryApi(cp, 'GET', `${PODS}/limited-0`); return r.status === 200 ? r.body : undefined })
    const c = pod.spec.containers[0]
    // the limit flags: after the fixed ones (up to --metrics-port), before --drain-seconds (the last spec field that is a flag)
    assert.deepEqual(c.args.slice(c.args.indexOf('--metrics-port') + 2, c.args.indexOf('--drain-seconds')), [
      '--max-pending-connections', '32', '--handshake-timeout', '3', '--ip-connections-per-second', '7'
    ])
    assert.deepEqual(c.args.slice(-2), ['--limits-file', '/var/run/pos-relay/limits/limits.json'])
    const limitsCm = `${CONFIGMAPS}/limited-limits`
    const cm = await api(cp, 'GET', limitsCm)
    assert.deepEqual(JSON.parse(cm.data['limits.json']), { limits: { ip_max_connections: 0, max_connections: 900 }, rate_limits: { peer_circuits_per_minute: 0, peer_reservations_per_minute: 11 } })
    assert.equal(cm.metadata.ownerReferences[0].kind, 'RelayPool', 'removed with its pool')
    assert.deepEqual(c.env, [{ name: 'POS_RELAY_LOG_LEVEL', value: 'info' }, { name: 'POS_RELAY_RATE_LIMIT_REDIS_URL', valueFrom: { secretKeyRef: { name: 'pos-relay-discovery', key: 'redis-url' } } }])
    assert.ok(!JSON.stringify(pod).includes(redis.url), 'the Redis URL is not written into the pod')
    // a pool without rate limits leaves every one of them to the relay
    await api(cp, 'POST', POOLS, { apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', metadata: { name: 'plain' }, spec: { replicas: 1, hostPort: 7676, image: 'pos-relay:test', discovery: { redisUrlSecretRef: { name: 'pos-relay-discovery' }, ttlSeconds: 10 } } })
    const plain = await until('plain-0', async () => { const r = await tryApi(cp, 'GET', `${PODS}/plain-0`); return r.status === 200 ? r.body : undefined })
    for (const p of [plain]) {
      const ec = p.spec.containers[0]
      assert.ok(!ec.args.some((a: string) => /^--(ip-connections-per-second|peer-reservations-per-minute|peer-circuits-per-minute|max-connections|redis)$/.test(a)), ec.args.join(' '))
      assert.deepEqual(ec.env, [{ name: 'POS_RELAY_LOG_LEVEL', value: 'info' }])
    }

    // the kubelet's part: run the container as specified; the relay reports the limits it enforces
    const relay = await runRelayContainer(cp, pod, cp.dir)
    try {
      // the Redis URL (it may carry a password) is redacted in the log line
      assert.deepEqual(relay.started.rate_limits, { ip_connections_per_second: 7, peer_reservations_per_minute: 11, peer_circuits_per_minute: 0, account_circuits_per_minute: 0, shared: true, redis_url: '[redacted]' })
      const l = relay.started.limits
      assert.deepEqual([l.max_connections, l.max_pending_connections, l.handshake_timeout_seconds, l.ip_max_connections], [900, 32, 3, 0])
      assert.equal(l.max_reservations, 4096, 'an unset limit keeps the relay default')
      await until('rate limits shared through the Redis named by the Secret', async () => (await scrapeMetric(relay.ready.metrics_port, /^pos_relay_rate_limit_redis_up (\d+)/m)) === 1, 10_000)

      // a reloadable limit changed: the ConfigMap follows, the pod stays (not Ready here, so a
      // template change would replace it at once), and the relay applies the file the kubelet refreshes
      await api(cp, 'PATCH', `${POOLS}/limited`, { spec: { rateLimits: { peerCircuitsPerMinute: 60 }, limits: { ipMaxConnections: 5 } } }, 'application/merge-patch+json')
      await until('limits ConfigMap updated', async () => JSON.parse((await api(cp, 'GET', limitsCm)).data['limits.json']).rate_limits.peer_circuits_per_minute === 60)
      const generation = (await api(cp, 'GET', `${POOLS}/limited`)).metadata.generation
      await until('pool reconciled at its new generation', async () => (await api(cp, 'GET', `${POOLS}/limited`)).status?.observedGeneration === generation)
      const kept = await api(cp, 'GET', `${PODS}/limited-0`)
      assert.equal(kept.metadata.uid, pod.metadata.uid, 'a reloadable limit change must not replace the pod')
      assert.equal(kept.metadata.deletionTimestamp, undefined)
      assert.equal(kept.metadata.annotations['pos-relay.io/template-hash'], pod.metadata.annotations['pos-relay.io/template-hash'])
      await relay.syncVolumes()
      // the relay reads the file every 10 s: wait for its count, not for a time
      await until('relay reloaded its limits', async () => (await scrapeMetric(relay.ready.metrics_port, /^pos_relay_limits_reloads_total\{result="applied"\} (\d+)/m)) === 2, 30_000)
      const reloaded = relay.stderr.map((l) => { try { return JSON.parse(l) } catch { return undefined } }).filter((o) => o?.event === 'limits_reloaded').at(-1)
      assert.equal(reloaded.rate_limits.peer_circuits_per_minute, 60)
      assert.equal(reloaded.limits.ip_max_connections, 5)
      assert.equal(reloaded.limits.max_connections, 900)
    } finally {
      await relay.kill('SIGKILL')
    }

    // a limit that needs a restart rolls the pod (not Ready here, so at once)
    await api(cp, 'PATCH', `${POOLS}/limited`, { spec: { rateLimits: { ipConnectionsPerSecond: 8 } } }, 'application/merge-patch+json')
    const rolled = await until('pod replaced with the new limit', async () => {
      const r = await tryApi(cp, 'GET', `${PODS}/limited-0`)
      return r.status === 200 && r.body.metadata.uid !== pod.metadata.uid ? r.body : undefined
    })
    const args = rolled.spec.containers[0].args
    assert.equal(args[args.indexOf('--ip-connections-per-second') + 1], '8')
    // the API server refuses a bad value with the CRD's message, and the pod stays as it is
    const bad = await cp.request('PATCH', `${POOLS}/limited`, { spec: { rateLimits: { peerCircuitsPerMinute: -1, ipConnectionsPerSecond: 100001 } } }, 'application/merge-patch+json')
    assert.equal(bad.status, 422, bad.text)
    assert.ok(bad.text.includes('spec.rateLimits.peerCircuitsPerMinute in body should be greater than or equal to 0'), bad.text)
    assert.ok(bad.text.includes('spec.rateLimits.ipConnectionsPerSecond in body should be less than or equal to 100000'), bad.text)
    assert.equal((await api(cp, 'GET', `${PODS}/limited-0`)).metadata.uid, rolled.metadata.uid)
    await api(cp, 'DELETE', `${POOLS}/limited`)
    await until('limited pool gone', async () => (await tryApi(cp, 'GET', `${POOLS}/limited`)).status === 404, 20_000)
  })

  it('Event series: a repeated event is one Event whose series.count the API server accepts and keeps', async () => {
    const client = new KubeClient(loadKubeConfig(cp.kubeconfigPath))
    const results: string[] = []
    const rec = new EventRecorder({ client, instance: 'test-recorder', flushIntervalMs: 200, onResult: (_t, r) => { results.push(r) } })
    const regarding = { apiVersion: 'v1', kind: 'Namespace', name: NS, namespace: NS }
    try {
      for (let i = 0; i < 5; i++) rec.record({ regarding, type: 'Warning', reason: 'SeriesTest', action: 'Test', note: 'the same thing again' })
      const ev = await until('series of 5', async () => {
        const items = (await api(cp, 'GET', `/apis/events.k8s.io/v1/namespaces/${NS}/events`)).items.filter((e: any) => e.reason === 'SeriesTest')
        return items.length === 1 && items[0].series?.count === 5 ? items[0] : undefined
      }, 10_000)
      assert.equal(ev.reportingInstance, 'test-recorder')
      assert.ok(Date.parse(ev.series.lastObservedTime) >= Date.parse(ev.eventTime))
      // the core/v1 view of the same object counts it too (kubectl describe reads this)
      const core = await api(cp, 'GET', `/api/v1/namespaces/${NS}/events/${ev.metadata.name}`)
      assert.equal(core.series.count, 5)
      assert.deepEqual(results, ['created', 'series'])
      // an Event the recorder cannot write (bad namespace) is logged and counted, never thrown
      rec.record({ regarding: { ...regarding, namespace: 'does-not-exist' }, type: 'Normal', reason: 'Nowhere', action: 'Test', note: 'x' })
      await until('error counted', async () => results.includes('error'))
    } finally {
      await rec.close()
      client.close()
    }
  })
})
