/**
 * The envtest-style harness itself: real, version-stamped binaries; RBAC
 * enforced; with kube-controller-manager, ownerReference cascade deletion and
 * namespace deletion work; stop() leaves no process and no temp folder behind.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { CRD_FILE, ensureKubeBinaries, pinnedVersions, run, startControlPlane, type ControlPlane } from '../harness.ts'
import { k, kJson, poll } from './helpers.ts'

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

// Outside any test so no test timeout applies: the first run builds the binaries (~12 min).
await ensureKubeBinaries()

describe('control-plane harness', { timeout: 300_000 }, () => {
  let cp: ControlPlane
  before(async () => {
    cp = await startControlPlane({ controllerManager: true, crds: [CRD_FILE] })
  })
  after(async () => { await cp?.stop() })

  it('runs the pinned, version-stamped binaries', async () => {
    const v = pinnedVersions()
    const server = await kJson(cp, ['version'])
    assert.equal(server.serverVersion.gitVersion, v.k8s)
    assert.equal(server.clientVersion.gitVersion, v.k8s)
    const etcd = await run(cp.binaries.etcd, ['--version'])
    assert.match(etcd.stdout, new RegExp(`etcd Version: ${v.etcd.slice(1).replaceAll('.', '\\.')}`))
    const helm = await cp.helm(['version', '--short'])
    assert.ok(helm.stdout.startsWith(v.helm), helm.stdout)
  })

  it('enforces RBAC (a ServiceAccount without bindings is denied)', async () => {
    const no = await cp.kubectl(['auth', 'can-i', 'list', 'pods', '--as=system:serviceaccount:default:nobody'])
    assert.equal(no.stdout.trim(), 'no')
    const yes = await cp.kubectl(['auth', 'can-i', '*', '*'])
    assert.equal(yes.stdout.trim(), 'yes')
  })

  it('admits pods without a ServiceAccount token controller (no ServiceAccount admission)', async () => {
    await k(cp, ['create', 'namespace', 'pods-ns'])
    await k(cp, ['apply', '-n', 'pods-ns', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'pos-relay:test' }] } }))
    const pod = await kJson(cp, ['get', 'pod', 'p', '-n', 'pods-ns'])
    assert.equal(pod.status.phase, 'Pending')
  })

  it('cascades the deletion of a RelayPool to the objects it owns (garbage collector)', async () => {
    await k(cp, ['apply', '-n', 'default', '-f', '-'], JSON.stringify({ apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', metadata: { name: 'owner' }, spec: { replicas: 1, discovery: { redisUrlSecretRef: { name: 'x' } } } }))
    const owner = await kJson(cp, ['get', 'relaypool', 'owner', '-n', 'default'])
    const ownerReferences = [{ apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', name: 'owner', uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true }]
    await k(cp, ['apply', '-n', 'default', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'owner-0', ownerReferences }, spec: { containers: [{ name: 'relay', image: 'pos-relay:test' }] } }))
    await k(cp, ['apply', '-n', 'default', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'owner-identity-0', ownerReferences }, stringData: { k: 'v' } }))
    await k(cp, ['delete', 'relaypool', 'owner', '-n', 'default', '--wait=false'])
    const t0 = Date.now()
    await poll('pod and secret garbage-collected', async () => {
      const pod = await cp.kubectl(['get', 'pod', 'owner-0', '-n', 'default'])
      const secret = await cp.kubectl(['get', 'secret', 'owner-identity-0', '-n', 'default'])
      return pod.code !== 0 && /NotFound/.test(pod.stderr) && secret.code !== 0
    }, 30_000)
    assert.ok(Date.now() - t0 < 30_000)
  })

  it('creates default ServiceAccounts and finishes namespace deletion (namespace + serviceaccount controllers)', async () => {
    await k(cp, ['create', 'namespace', 'doomed'])
    await poll('default ServiceAccount', async () => (await cp.kubectl(['get', 'serviceaccount', 'default', '-n', 'doomed'])).code === 0)
    await k(cp, ['create', 'configmap', 'c', '-n', 'doomed', '--from-literal=a=b'])
    await k(cp, ['delete', 'namespace', 'doomed', '--wait=false'])
    await poll('namespace gone', async () => /NotFound/.test((await cp.kubectl(['get', 'namespace', 'doomed'])).stderr), 60_000)
  })

  it('exposes a kubeconfig and env for child processes', async () => {
    assert.ok(existsSync(cp.kubeconfigPath))
    assert.equal(cp.env.KUBECONFIG, cp.kubeconfigPath)
    const r = await run(cp.binaries.kubectl, ['get', 'namespace', 'default', '-o', 'name'], { env: cp.env })
    assert.equal(r.stdout.trim(), 'namespace/default')
    const api = await cp.request('GET', '/api/v1/namespaces/default')
    assert.equal(api.status, 200)
    assert.equal(api.body.metadata.name, 'default')
  })

  it('stop() kills every process and removes the temp folder; a second control plane starts independently', async () => {
    const other = await startControlPlane()
    const dir = other.dir
    const out = await other.kubectl(['get', 'namespaces', '-o', 'name'])
    assert.match(out.stdout, /namespace\/default/)
    // the two planes do not share state
    assert.equal((await other.kubectl(['get', 'crd', 'relaypools.pos-relay.io'])).code, 1)
    const pids = (await run('pgrep', ['-f', dir])).stdout.trim().split('\n').filter(Boolean).map(Number)
    assert.ok(pids.length >= 2, `expected etcd and kube-apiserver running under ${dir}`)
    await other.stop()
    assert.ok(!existsSync(dir))
    for (const pid of pids) assert.ok(!alive(pid), `pid ${pid} still alive`)
    await other.stop() // idempotent
  })
})
