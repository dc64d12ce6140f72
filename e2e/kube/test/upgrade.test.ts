/**
 * `helm upgrade` from the chart as it was on main before issue 16's chart work (commit
 * OLD_COMMIT, packaged by this test with `git archive`) to this checkout's chart, with a live
 * RelayPool, against a real kube-apiserver:
 * - the CRD, which the old chart shipped in crds/ (never upgraded by Helm), is adopted with
 *   `--take-ownership` (docs/kubernetes.md, "Upgrades and uninstall") and upgraded: the live
 *   CRD's schema is now the generated one, annotated helm.sh/resource-policy: keep;
 * - the Secrets the old chart rendered (p2p secret, Redis password) are kept byte for byte by the
 *   secrets hook (keep annotation), not deleted by Helm although they left the manifest;
 * - the pool's relays never leave discovery more than one at a time, through the upgrade and the
 *   operator's replacement by one with the new Deployment's settings (which may roll the relay pods).
 *
 * What plays what: there is no kubelet here. The test runs the accounts hook's args with this
 * checkout's CLI (helmWithAccountsHook), runs the operator as a process of this checkout with the
 * relay settings (env) of the rendered operator Deployment, old then new (the operator's own code
 * is this checkout's both times: the old operator binary is not run), marks every relay pod Ready
 * as a kubelet would, and lists relays through a discovery process on a real Redis that the pool's
 * Secret points at (the chart's in-cluster Redis does not run without a kubelet). Relay processes
 * are not started: the operator keeps their registry entries alive (no api-url in the pool's Secret).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import YAML from 'yaml'
import { startRedis, type RedisServer } from '@pos-relay/testing'
import { kubelet, startOperator, type OperatorProc } from '../../../operator/test/kube-helpers.ts'
import { startLocalDiscovery, type LocalDiscovery } from '../../test/helpers/relay.ts'
import { applyExamplePool, EXAMPLE_POOL, listRelays } from '../../shared/relaypool.ts'
import { CHART_DIR, CRD_FILE, REPO_ROOT, ensureKubeBinaries, startControlPlane, type ControlPlane } from '../harness.ts'
import { helmWithAccountsHook, k, kJson, poll, poolFixture } from './helpers.ts'

/** main before this change (the merge-base of issue 16's chart branches) */
const OLD_COMMIT = '7f1aea1'
const NS = 'pos-relay'
const APPS = 'apps'
const REPLICAS = 3
const SECRET = 'upgrade-' + Math.random().toString(36).slice(2)

await ensureKubeBinaries()

describe(`helm upgrade from the chart at ${OLD_COMMIT} to this one, with a live RelayPool`, { timeout: 400_000 }, () => {
  let cp: ControlPlane
  let tmp: string
  let oldChart: string
  let redis: RedisServer
  let discovery: LocalDiscovery
  let operator: OperatorProc | undefined
  let sampling = true
  let kubeletLoop: Promise<void> | undefined
  const counts: number[] = []
  let sampler: Promise<void> | undefined

  before(async () => {
    cp = await startControlPlane({ controllerManager: true })
    tmp = mkdtempSync(join(tmpdir(), 'pos-relay-upgrade-'))
    // the old chart, as `helm package` would see it at that commit
    const tar = execFileSync('git', ['archive', OLD_COMMIT, 'charts/pos-relay'], { cwd: REPO_ROOT, maxBuffer: 64 << 20 })
    execFileSync('tar', ['-x', '-C', tmp], { input: tar })
    oldChart = join(tmp, 'charts', 'pos-relay')
    redis = await startRedis()
    discovery = await startLocalDiscovery({ secret: SECRET, redisUrl: redis.url, args: ['--ttl', '30'] })
  }, { timeout: 120_000 })

  after(async () => {
    sampling = false
    await sampler
    await kubeletLoop
    await operator?.kill('SIGKILL')
    await discovery?.proc.kill('SIGKILL')
    await redis?.stop()
    await cp?.stop()
    if (tmp != null) rmSync(tmp, { recursive: true, force: true })
  })

  /** the relay settings of the rendered operator Deployment (what the operator's pod would get) */
  async function operatorEnv (): Promise<Record<string, string>> {
    const dep = await kJson(cp, ['get', 'deployment', 'pos-relay-operator', '-n', NS])
    const env: Record<string, string> = {}
    for (const e of dep.spec.template.spec.containers[0].env) {
      if (e.value != null && /^POS_RELAY_OPERATOR_RELAY_/.test(e.name as string)) env[e.name] = e.value
    }
    return env
  }

  /**
   * the kubelet's part: every relay pod that is not Ready becomes Ready; a pod being deleted goes
   * away (its container stopped: the kubelet's final delete, here a forced one)
   */
  function runKubelet (): Promise<void> {
    return (async () => {
      while (sampling) {
        const pods = (await kJson(cp, ['get', 'pods', '-n', APPS])).items as any[]
        for (const p of pods) {
          const ready = (p.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True')
          if (p.metadata.deletionTimestamp != null) await cp.kubectl(['delete', 'pod', p.metadata.name, '-n', APPS, '--grace-period=0', '--force', '--wait=false'])
          else if (!ready) await kubelet(cp, APPS, p.metadata.name, true).catch(() => {})
        }
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    })()
  }

  it('the old chart installs (CRD from its crds/, Secrets rendered by Helm) and runs a pool of 3 relays, all listed', async () => {
    const { helm: r, hook } = await helmWithAccountsHook(cp, ['install', 'pos-relay', oldChart, '--namespace', NS, '--create-namespace'], { namespace: NS, tmp })
    assert.equal(hook?.code, 0, hook?.stderr)
    assert.equal(r.code, 0, r.stderr)
    const secret = await kJson(cp, ['get', 'secret', 'pos-relay-discovery', '-n', NS])
    assert.equal(secret.metadata.annotations['meta.helm.sh/release-name'], 'pos-relay', 'the old chart rendered it')
    const crd = await kJson(cp, ['get', 'crd', 'relaypools.pos-relay.io'])
    assert.equal(crd.metadata.annotations?.['meta.helm.sh/release-name'], undefined, 'crds/ is outside the release')
    await poolFixture(cp, { namespace: APPS, redisUrl: redis.url, p2pSecret: SECRET, nodes: [1, 2, 3].map((i) => ({ name: `node-${i}`, internalIP: `10.89.0.${i + 1}` })) })
    operator = await startOperator(cp, [], await operatorEnv())
    kubeletLoop = runKubelet()
    await applyExamplePool(cp.kubectl, APPS, { replicas: REPLICAS })
    await poll('3 relays listed', async () => (await listRelays(discovery.url)).length === REPLICAS, 60_000)
    sampler = (async () => {
      while (sampling) {
        counts.push((await listRelays(discovery.url)).length)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    })()
  })

  it('helm upgrade --take-ownership to this chart: CRD adopted and upgraded, old Secrets kept, pool untouched', async () => {
    const before = {
      discovery: (await kJson(cp, ['get', 'secret', 'pos-relay-discovery', '-n', NS])).data,
      redis: (await kJson(cp, ['get', 'secret', 'pos-relay-redis', '-n', NS])).data,
      pool: (await kJson(cp, ['get', 'relaypool', EXAMPLE_POOL, '-n', APPS])).metadata.uid,
      pods: ((await kJson(cp, ['get', 'pods', '-n', APPS])).items as any[]).map((p) => p.metadata.uid).sort()
    }
    // without --take-ownership Helm refuses the CRD it did not install (the documented one-time step)
    const refused = await cp.helm(['upgrade', 'pos-relay', CHART_DIR, '--namespace', NS, '--no-hooks', '--dry-run=server'])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /CustomResourceDefinition "relaypools\.pos-relay\.io".*exists and cannot be imported into the current release/s)

    const { helm: r, hook } = await helmWithAccountsHook(cp, ['upgrade', 'pos-relay', CHART_DIR, '--namespace', NS, '--take-ownership'], { namespace: NS, tmp })
    assert.equal(hook?.code, 0, hook?.stderr)
    assert.equal(r.code, 0, r.stderr)
    const events = hook!.stdout.trim().split('\n').map((l) => JSON.parse(l))
    assert.ok(events.some((e) => e.event === 'secret_adopted' && e.secret === 'pos-relay-redis'), hook!.stdout)
    assert.ok(events.some((e) => e.event === 'secret_updated' && e.secret === 'pos-relay-discovery' && e.adopted === true), hook!.stdout)

    // the CRD is the release's now, upgraded to the generated one, and kept on uninstall
    const crd = await kJson(cp, ['get', 'crd', 'relaypools.pos-relay.io'])
    assert.equal(crd.metadata.annotations['meta.helm.sh/release-name'], 'pos-relay')
    assert.equal(crd.metadata.annotations['helm.sh/resource-policy'], 'keep')
    const generated = YAML.parse(readFileSync(CRD_FILE, 'utf8'))
    const oldCrd = YAML.parse(readFileSync(join(oldChart, 'crds', 'relaypools.pos-relay.io.yaml'), 'utf8'))
    assert.notDeepEqual(oldCrd.spec.versions, generated.spec.versions, `the CRD changed since ${OLD_COMMIT} (else this proves nothing)`)
    assert.deepEqual(crd.spec.versions.map((v: any) => v.schema), generated.spec.versions.map((v: any) => v.schema))
    assert.deepEqual(crd.spec.versions.map((v: any) => v.additionalPrinterColumns), generated.spec.versions.map((v: any) => v.additionalPrinterColumns))

    // the rendered Secrets of the old chart: still there, same bytes, kept by Helm's resource policy
    const discoverySecret = await kJson(cp, ['get', 'secret', 'pos-relay-discovery', '-n', NS])
    const redisSecret = await kJson(cp, ['get', 'secret', 'pos-relay-redis', '-n', NS])
    assert.equal(discoverySecret.data['p2p-secret'], before.discovery['p2p-secret'])
    assert.equal(discoverySecret.data['redis-url'], before.discovery['redis-url'])
    assert.equal(redisSecret.data.password, before.redis.password)
    for (const s of [discoverySecret, redisSecret]) assert.equal(s.metadata.annotations['helm.sh/resource-policy'], 'keep')
    assert.doesNotMatch((await cp.helm(['get', 'manifest', 'pos-relay', '-n', NS])).stdout, /kind: Secret/)

    // Helm touched neither the pool nor its pods
    assert.equal((await kJson(cp, ['get', 'relaypool', EXAMPLE_POOL, '-n', APPS])).metadata.uid, before.pool)
    assert.deepEqual(((await kJson(cp, ['get', 'pods', '-n', APPS])).items as any[]).map((p) => p.metadata.uid).sort(), before.pods)
  })

  it('the operator with the new Deployment\'s settings takes over: relays leave discovery one at a time at most, all back at the end', async (t) => {
    const uidsBefore = ((await kJson(cp, ['get', 'pods', '-n', APPS])).items as any[]).map((p) => p.metadata.uid)
    await operator!.kill('SIGTERM')
    operator = await startOperator(cp, [], await operatorEnv())
    // the pool settles: every relay Ready and listed, with no pod being replaced
    await poll('pool settled with the new operator', async () => {
      const pool = await kJson(cp, ['get', 'relaypool', EXAMPLE_POOL, '-n', APPS])
      const pods = (await kJson(cp, ['get', 'pods', '-n', APPS])).items as any[]
      const st = pool.status ?? {}
      return st.observedGeneration === pool.metadata.generation && st.readyRelays === REPLICAS && st.registeredRelays === REPLICAS && pods.length === REPLICAS && pods.every((p) => p.metadata.deletionTimestamp == null) &&
        (await listRelays(discovery.url)).length === REPLICAS
    }, 120_000, 500)
    // a few more samples after settling
    const n = counts.length
    await poll('more samples', async () => counts.length >= n + 10)
    sampling = false
    await sampler
    const replaced = ((await kJson(cp, ['get', 'pods', '-n', APPS])).items as any[]).filter((p) => !uidsBefore.includes(p.metadata.uid)).length
    t.diagnostic(`relay pods replaced by the new operator settings: ${replaced} of ${REPLICAS}; listed relays over ${counts.length} samples: min ${Math.min(...counts)}`)
    assert.ok(counts.length > 20, `${counts.length} samples`)
    assert.ok(Math.min(...counts) >= REPLICAS - 1, `relays listed over time (min ${Math.min(...counts)}): ${counts.join(',')}`)
    await k(cp, ['get', 'relaypool', EXAMPLE_POOL, '-n', APPS])
  })
})
