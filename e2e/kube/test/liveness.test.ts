/**
 * Relays own their liveness (issue 11, "Tests", second bullet; the contract
 * is docs/registry.md). A real kube-apiserver + etcd, the operator and the
 * discovery API as processes, discovery on a real Redis with a short TTL, and
 * two relays started from the pod specs the operator rendered (their args,
 * env and identity Secrets, as a kubelet would; the pool's Secret carries the
 * discovery URL, so they heartbeat with refresh-only):
 *
 * 1. the operator stopped for 10 × the TTL: no Ready relay leaves discovery
 *    (their own refreshes keep the entries the operator created);
 * 2. a relay killed (and its pod deleted) while the operator is down: its
 *    entry expires by the TTL, the other stays;
 * 3. the operator back: a relay whose pod is deleted is out of discovery
 *    within 2 s, and its own heartbeats (still running) cannot list it again.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { freePort, startRedis, type RedisServer } from '@pos-relay/testing'
import { kubelet, runRelayContainer, startOperator, until, type CliProcess, type OperatorProc } from '../../../operator/test/kube-helpers.ts'
import { startLocalDiscovery, type LocalDiscovery } from '../../test/helpers/relay.ts'
import { applyExamplePool, EXAMPLE_POOL, listRelays, waitForPoolReady } from '../../shared/relaypool.ts'
import { CRD_FILE, ensureKubeBinaries, startControlPlane, type ControlPlane } from '../harness.ts'
import { k, kJson, poolFixture } from './helpers.ts'

const SECRET = 'liveness-' + Math.random().toString(36).slice(2)
const NS = 'pos-relay'
/** the shortest TTL a pool may set (CRD minimum), for discovery and the pool alike */
const TTL_S = 3
const ids = [0, 1].map((slot) => `${NS}:${EXAMPLE_POOL}:${slot}`)

await ensureKubeBinaries()

describe('relays stay listed while the operator is down (registry contract)', { timeout: 300_000 }, () => {
  let cp: ControlPlane
  let redis: RedisServer
  let discovery: LocalDiscovery
  let operator: OperatorProc | undefined
  const relays = new Map<number, CliProcess & { ready: any }>()

  /** the operator's args: its own lease timings do not matter here, the TTL is the pool's */
  const startTheOperator = async (): Promise<OperatorProc> => await startOperator(cp, ['--relay-image', 'pos-relay:test'])

  /** runs slot's relay from its pod as rendered, then reports the pod Ready (the kubelet's part) */
  const runSlot = async (slot: number): Promise<void> => {
    const name = `${EXAMPLE_POOL}-${slot}`
    const pod = await until(`pod ${name}`, async () => {
      const r = await cp.kubectl(['get', 'pod', name, '-n', NS, '-o', 'json'])
      return r.code === 0 && JSON.parse(r.stdout).metadata.deletionTimestamp == null ? JSON.parse(r.stdout) : undefined
    }, 30_000)
    assert.ok(pod.spec.containers[0].args.includes('--refresh-only'), 'pool relays only refresh their entry')
    assert.ok(pod.spec.containers[0].env.some((e: any) => e.name === 'POS_RELAY_API_URL'), 'the discovery URL comes from the pool\'s Secret')
    relays.set(slot, await runRelayContainer(cp, pod, cp.dir, { port: await freePort() }))
    await kubelet(cp, NS, name, true, `10.244.0.${10 + slot}`)
  }

  /** ids listed by discovery now */
  const listed = async (): Promise<Set<string>> => new Set((await listRelays(discovery.url)).map((r) => r.id))

  /**
   * Polls discovery every 100 ms for `ms` and returns every moment one of
   * `mustStay` was missing; `during` runs meanwhile.
   */
  const watch = async (ms: number, mustStay: () => string[], during: () => Promise<void> = async () => {}): Promise<{ polls: number, gaps: string[] }> => {
    const gaps: string[] = []
    let polls = 0
    const end = Date.now() + ms
    const poller = (async () => {
      while (Date.now() < end) {
        const now = await listed()
        polls++
        for (const id of mustStay()) if (!now.has(id)) gaps.push(`${new Date().toISOString()} ${id}`)
        await sleep(100)
      }
    })()
    await during()
    await poller
    return { polls, gaps }
  }

  before(async () => {
    cp = await startControlPlane({ crds: [CRD_FILE] })
    redis = await startRedis()
    discovery = await startLocalDiscovery({ secret: SECRET, redisUrl: redis.url, args: ['--ttl', String(TTL_S)] })
    // the chart's discovery Secret, with the URL relays refresh their entries through
    await poolFixture(cp, {
      namespace: NS,
      redisUrl: redis.url,
      p2pSecret: SECRET,
      apiUrl: discovery.url,
      nodes: ['127.0.0.1', '127.0.0.2'].map((address, i) => ({ name: `node-${i + 1}`, internalIP: `10.89.0.${i + 2}`, publicAddress: address }))
    })
    operator = await startTheOperator()
    await applyExamplePool(cp.kubectl, NS, { replicas: 2, hostPort: await freePort(), discovery: { ttlSeconds: TTL_S } })
    for (const slot of [0, 1]) await runSlot(slot)
    await waitForPoolReady(cp.kubectl, NS, EXAMPLE_POOL, 2)
    await until('both relays listed', async () => { const now = await listed(); return ids.every((id) => now.has(id)) }, 10_000)
  }, { timeout: 180_000 })

  after(async () => {
    for (const r of relays.values()) await r.kill('SIGKILL')
    await operator?.kill('SIGKILL')
    await discovery?.proc.kill('SIGKILL')
    await redis?.stop()
    await cp?.stop()
  })

  it(`operator stopped for 10 × the TTL (${10 * TTL_S} s): no Ready relay leaves discovery; a relay killed meanwhile expires by its TTL`, async () => {
    // stopped the moment both are listed: the entries it created must be kept alive by the relays alone
    await operator!.kill('SIGKILL')
    operator = undefined
    let killed: string | undefined
    let killedAt = 0
    let goneAfterMs = -1
    const r = await watch(10 * TTL_S * 1000, () => killed == null ? ids : ids.filter((id) => id !== killed), async () => {
      await sleep(4 * TTL_S * 1000)
      assert.ok((await listed()).has(ids[1]!), `${ids[1]} listed until its relay is killed`)
      // the kubelet's part when a pod is deleted: the process ends (SIGKILL: no deregistration of its own)
      await k(cp, ['delete', 'pod', `${EXAMPLE_POOL}-1`, '-n', NS, '--grace-period=0', '--force', '--wait=false'])
      await relays.get(1)!.kill('SIGKILL')
      relays.delete(1)
      killed = ids[1]
      killedAt = Date.now()
      await until(`${ids[1]} expires by its TTL`, async () => !(await listed()).has(ids[1]!), TTL_S * 1000 + 3000, 100)
      goneAfterMs = Date.now() - killedAt
    })
    process.stdout.write(`# ${r.polls} polls over ${10 * TTL_S} s; killed relay gone after ${goneAfterMs} ms (TTL ${TTL_S} s)\n`)
    assert.ok(r.polls >= 100, `discovery polled ${r.polls} times`)
    assert.deepEqual(r.gaps, [], 'a Ready relay was missing from discovery while the operator was down')
    assert.ok(goneAfterMs >= 0)
  })

  it('operator back: the deleted relay\'s pod is recreated and listed again; a relay whose pod is deleted is out within 2 s and stays out', async () => {
    operator = await startTheOperator()
    await runSlot(1)
    await until('the recreated relay is listed', async () => (await listed()).has(ids[1]!), 20_000)
    // deleting the pod (the kubelet would now stop the container after its drain; here the process keeps
    // heartbeating): the operator delists it at once, and its refresh-only heartbeats cannot list it again
    const t0 = Date.now()
    await k(cp, ['delete', 'pod', `${EXAMPLE_POOL}-0`, '-n', NS, '--wait=false'])
    await until(`${ids[0]} out of discovery within 2 s of its pod's deletion`, async () => !(await listed()).has(ids[0]!), 2000, 50)
    process.stdout.write(`# relay out ${Date.now() - t0} ms after its pod's deletion\n`)
    assert.ok(relays.get(0)!.child.exitCode == null, 'the relay process still runs (and heartbeats)')
    const r = await watch(2 * TTL_S * 1000, () => [ids[1]!])
    assert.deepEqual(r.gaps, [])
    assert.ok(!(await listed()).has(ids[0]!), 'the relay of the deleted pod listed itself again')
    const pod = await kJson(cp, ['get', 'pod', `${EXAMPLE_POOL}-0`, '-n', NS])
    assert.ok(pod.metadata.deletionTimestamp != null)
  })
})
