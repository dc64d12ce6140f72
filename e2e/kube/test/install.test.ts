/**
 * `helm install pos-relay charts/pos-relay` into a real API server: the CRD and
 * every object exist (nothing runs: there is no kubelet in this tier), the
 * generated secrets survive an upgrade, the operator's RBAC is what it needs
 * and no more, examples/relaypool.yaml applies, and `helm uninstall` runs the
 * pre-delete hook, which deletes the RelayPools and waits for their finalizers.
 * The test plays the kubelet for the hook Job (runs its script from the
 * rendered ConfigMap, as the hook's ServiceAccount) and the operator (removes
 * the finalizer once a pool is being deleted).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CHART_DIR, REPO_ROOT, ensureKubeBinaries, run, startControlPlane, type ControlPlane, type ExecResult } from '../harness.ts'
import { ensureNamespace, helmWithAccountsHook, k, kJson, poll, renderChart } from './helpers.ts'

const NS = 'pos-relay'
const FINALIZER = 'pos-relay.io/registry-cleanup'
const OPERATOR_SA = `system:serviceaccount:${NS}:pos-relay-operator`
const EXAMPLE = readFileSync(join(REPO_ROOT, 'examples', 'relaypool.yaml'), 'utf8')

const b64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8')

// Outside any test so no test timeout applies: the first run builds the binaries (~12 min).
await ensureKubeBinaries()

describe('helm install into a real API server', { timeout: 400_000 }, () => {
  let cp: ControlPlane
  let tmp: string
  before(async () => {
    cp = await startControlPlane()
    tmp = mkdtempSync(join(tmpdir(), 'pos-relay-install-'))
  })
  after(async () => {
    await cp?.stop()
    if (tmp != null) rmSync(tmp, { recursive: true, force: true })
  })

  /** Runs the hook script exactly as the Job would, with a token of `serviceAccount`. */
  async function runHookScript (script: string, serviceAccount: string, env: Record<string, string>): Promise<ExecResult> {
    const token = (await k(cp, ['create', 'token', serviceAccount, '-n', NS, '--duration=10m'])).trim()
    const tokenFile = join(tmp, `token-${serviceAccount}`)
    const scriptFile = join(tmp, 'delete-relaypools.mjs')
    writeFileSync(tokenFile, token)
    writeFileSync(scriptFile, script)
    return await run(process.execPath, [scriptFile], {
      env: { KUBE_API: cp.server, KUBE_TOKEN_FILE: tokenFile, NODE_EXTRA_CA_CERTS: cp.tls.caFile, ...env },
      timeoutMs: 120_000
    })
  }

  async function addFinalizer (name: string, ns: string): Promise<void> {
    await k(cp, ['patch', 'relaypool', name, '-n', ns, '--type=merge', '-p', JSON.stringify({ metadata: { finalizers: [FINALIZER] } })])
  }

  /** The fake operator: drops the finalizer of every pool that is being deleted. */
  async function releaseDeleting (): Promise<number> {
    const list = await kJson(cp, ['get', 'relaypools', '-A'])
    let n = 0
    for (const p of list.items) {
      if (p.metadata.deletionTimestamp == null || !(p.metadata.finalizers ?? []).includes(FINALIZER)) continue
      await k(cp, ['patch', 'relaypool', p.metadata.name, '-n', p.metadata.namespace, '--type=json', '-p', JSON.stringify([{ op: 'remove', path: '/metadata/finalizers' }])])
      n++
    }
    return n
  }

  let notes = ''
  it('helm install succeeds and prints the NOTES', async () => {
    // accounts are on by default: the test plays the kubelet for the pre-install hook that creates their Secrets
    const { helm: r, hook } = await helmWithAccountsHook(cp, ['install', 'pos-relay', CHART_DIR, '--namespace', NS, '--create-namespace'], { namespace: NS, tmp })
    assert.equal(hook?.code, 0, hook?.stderr)
    assert.equal(r.code, 0, r.stderr)
    notes = r.stdout
    assert.match(notes, /STATUS: deployed/)
    assert.match(notes, /kubectl get relaypools -n pos-relay -o wide/)
    assert.match(notes, /redisUrlSecretRef: \{ name: pos-relay-discovery \}/)
    const list = await cp.helm(['list', '-n', NS, '-o', 'json'])
    assert.equal(JSON.parse(list.stdout)[0].status, 'deployed')
  })

  it('installed the CRD and every object', async () => {
    const crd = await kJson(cp, ['get', 'crd', 'relaypools.pos-relay.io'])
    assert.ok(crd.status.conditions.some((c: any) => c.type === 'Established' && c.status === 'True'))
    const names = (await k(cp, ['get', 'deployments,services,secrets,serviceaccounts,configmaps,roles,rolebindings,poddisruptionbudgets', '-n', NS, '-o', 'name'])).split('\n')
    for (const want of [
      'deployment.apps/pos-relay-operator', 'deployment.apps/pos-relay-discovery', 'deployment.apps/pos-relay-redis',
      'service/pos-relay-discovery', 'service/pos-relay-redis', 'service/pos-relay-operator-metrics',
      'secret/pos-relay-discovery', 'secret/pos-relay-redis', 'secret/pos-relay-ticket-keys', 'secret/pos-relay-admin', 'serviceaccount/pos-relay-operator',
      'configmap/pos-relay-dashboard-fleet-overview', 'configmap/pos-relay-dashboard-operator',
      'role.rbac.authorization.k8s.io/pos-relay-operator-leader-election', 'rolebinding.rbac.authorization.k8s.io/pos-relay-operator-leader-election',
      'poddisruptionbudget.policy/pos-relay-discovery', 'poddisruptionbudget.policy/pos-relay-operator'
    ]) assert.ok(names.includes(want), `missing ${want}`)
    for (const want of ['clusterrole/pos-relay-operator', 'clusterrolebinding/pos-relay-operator', 'clusterrole/pos-relay-operator-nodes']) {
      await k(cp, ['get', want])
    }
    // hook objects exist only while `helm uninstall` runs
    assert.equal((await cp.kubectl(['get', 'job', 'pos-relay-cleanup', '-n', NS])).code, 1)
    assert.equal((await cp.kubectl(['get', 'job', 'pos-relay-accounts-secrets', '-n', NS])).code, 1)
    // dashboards carry the sidecar label
    const cms = await kJson(cp, ['get', 'configmaps', '-n', NS, '-l', 'grafana_dashboard=1'])
    assert.equal(cms.items.length, 2)
    // the operator runs `pos-relay operator` from the one image
    const op = await kJson(cp, ['get', 'deployment', 'pos-relay-operator', '-n', NS])
    const c = op.spec.template.spec.containers[0]
    assert.deepEqual(c.args, ['operator'])
    assert.equal(c.image, 'pos-relay:0.1.0')
    assert.equal(c.env.find((e: any) => e.name === 'POS_RELAY_OPERATOR_RELAY_IMAGE').value, 'pos-relay:0.1.0')
  })

  let secretBefore: any
  it('the hook creates the p2p secret and the Redis password (not Helm), wires them together, and keeps them across helm upgrade', async () => {
    const discovery = await kJson(cp, ['get', 'secret', 'pos-relay-discovery', '-n', NS])
    secretBefore = discovery.data
    const redisSecret = await kJson(cp, ['get', 'secret', 'pos-relay-redis', '-n', NS])
    const password = b64(redisSecret.data.password)
    assert.match(password, /^[A-Za-z0-9]{32}$/)
    assert.match(b64(secretBefore['p2p-secret']), /^[A-Za-z0-9]{48}$/)
    assert.equal(b64(secretBefore['redis-url']), `redis://:${password}@pos-relay-redis.pos-relay.svc:6379`)
    assert.equal(b64(secretBefore['api-url']), 'http://pos-relay-discovery.pos-relay.svc:8080')
    // not in the release: neither in its manifest nor owned by Helm
    for (const s of [discovery, redisSecret]) assert.equal(s.metadata.annotations?.['meta.helm.sh/release-name'], undefined)
    assert.doesNotMatch((await cp.helm(['get', 'manifest', 'pos-relay', '-n', NS])).stdout, /kind: Secret/)
    // Redis gets the password from the Secret (env), its config from a ConfigMap without it
    const redisDeployment = await kJson(cp, ['get', 'deployment', 'pos-relay-redis', '-n', NS])
    const env = redisDeployment.spec.template.spec.containers[0].env
    assert.deepEqual(env, [{ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'pos-relay-redis', key: 'password' } } }])
    assert.doesNotMatch((await kJson(cp, ['get', 'configmap', 'pos-relay-redis', '-n', NS])).data['redis.conf'], /requirepass/)
    const { helm: r } = await helmWithAccountsHook(cp, ['upgrade', 'pos-relay', CHART_DIR, '--namespace', NS, '--set', 'discovery.replicas=3'], { namespace: NS, tmp })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual((await kJson(cp, ['get', 'secret', 'pos-relay-discovery', '-n', NS])).data, secretBefore)
    assert.deepEqual((await kJson(cp, ['get', 'secret', 'pos-relay-redis', '-n', NS])).data, redisSecret.data)
    assert.equal((await kJson(cp, ['get', 'deployment', 'pos-relay-discovery', '-n', NS])).spec.replicas, 3)
    // a changed Service port reaches the Secret's api-url at the next upgrade, the p2p secret stays
    const { helm: r2 } = await helmWithAccountsHook(cp, ['upgrade', 'pos-relay', CHART_DIR, '--namespace', NS, '--set', 'discovery.replicas=3', '--set', 'discovery.service.port=8081'], { namespace: NS, tmp })
    assert.equal(r2.code, 0, r2.stderr)
    const after = (await kJson(cp, ['get', 'secret', 'pos-relay-discovery', '-n', NS])).data
    assert.equal(b64(after['api-url']), 'http://pos-relay-discovery.pos-relay.svc:8081')
    assert.equal(after['p2p-secret'], secretBefore['p2p-secret'])
    const { helm: r3 } = await helmWithAccountsHook(cp, ['upgrade', 'pos-relay', CHART_DIR, '--namespace', NS, '--set', 'discovery.replicas=3'], { namespace: NS, tmp })
    assert.equal(r3.code, 0, r3.stderr)
    assert.deepEqual((await kJson(cp, ['get', 'secret', 'pos-relay-discovery', '-n', NS])).data, secretBefore)
  })

  it('gives the operator what it needs and nothing more (RBAC)', async () => {
    const can = async (args: string[]): Promise<string> => (await cp.kubectl(['auth', 'can-i', ...args, `--as=${OPERATOR_SA}`])).stdout.trim()
    // exactly the operator's calls (see the comment in templates/operator-rbac.yaml)
    const yes: string[][] = [
      ['list', 'relaypools.pos-relay.io', '-A'], ['watch', 'relaypools.pos-relay.io', '-A'], ['patch', 'relaypools.pos-relay.io', '-n', 'default'],
      ['patch', 'relaypools.pos-relay.io', '--subresource=status', '-n', 'default'], ['update', 'relaypools.pos-relay.io', '--subresource=finalizers', '-n', 'default'],
      ['create', 'pods', '-n', 'default'], ['patch', 'pods', '-n', 'default'], ['delete', 'pods', '-n', 'apps'], ['list', 'pods', '-A'], ['watch', 'pods', '-A'],
      ['get', 'secrets', '-n', 'default'], ['get', 'configmaps', '-n', 'default'], ['create', 'configmaps', '-n', 'default'], ['patch', 'configmaps', '-n', 'default'], ['list', 'secrets', '-A'], ['watch', 'secrets', '-A'], ['create', 'secrets', '-n', 'default'], ['patch', 'secrets', '-n', 'default'], ['delete', 'secrets', '-n', 'default'],
      ['list', 'nodes'], ['watch', 'nodes'], ['create', 'events.events.k8s.io', '-n', 'default'], ['patch', 'events.events.k8s.io', '-n', 'default'],
      ['create', 'leases.coordination.k8s.io', '-n', NS], ['get', 'leases.coordination.k8s.io/pos-relay-operator', '-n', NS], ['update', 'leases.coordination.k8s.io/pos-relay-operator', '-n', NS]
    ]
    const no: string[][] = [
      ['delete', 'relaypools.pos-relay.io', '-n', 'default'], ['create', 'relaypools.pos-relay.io', '-n', 'default'],
      ['update', 'relaypools.pos-relay.io', '-n', 'default'], ['get', 'relaypools.pos-relay.io', '-n', 'default'], ['update', 'relaypools.pos-relay.io', '--subresource=status', '-n', 'default'],
      ['get', 'pods', '-n', 'default'], ['update', 'pods', '-n', 'default'], ['update', 'secrets', '-n', 'default'], ['get', 'nodes'],
      ['create', 'events', '-n', 'default'], ['delete', 'events.events.k8s.io', '-n', 'default'],
      ['update', 'leases.coordination.k8s.io', '-n', 'default'], ['update', 'leases.coordination.k8s.io/another-lease', '-n', NS], ['list', 'leases.coordination.k8s.io', '-n', NS],
      ['delete', 'leases.coordination.k8s.io/pos-relay-operator', '-n', NS], ['patch', 'nodes'], ['delete', 'nodes'],
      ['create', 'deployments.apps', '-n', NS], ['list', 'configmaps', '-A'], ['watch', 'configmaps', '-A'], ['delete', 'configmaps', '-n', 'default'], ['update', 'configmaps', '-n', 'default'], ['create', 'pods', '--subresource=exec', '-n', 'default'],
      ['update', 'pods', '--subresource=status', '-n', 'default'], ['create', 'clusterroles.rbac.authorization.k8s.io'],
      ['delete', 'customresourcedefinitions.apiextensions.k8s.io']
    ]
    for (const args of yes) assert.equal(await can(args), 'yes', `operator should be able to ${args.join(' ')}`)
    for (const args of no) assert.equal(await can(args), 'no', `operator should not be able to ${args.join(' ')}`)
  })

  it('kubectl apply -f examples/relaypool.yaml works in the release namespace', async () => {
    const out = await k(cp, ['apply', '-n', NS, '-f', join(REPO_ROOT, 'examples', 'relaypool.yaml')])
    assert.match(out, /relaypool\.pos-relay\.io\/relays created/)
    const get = await k(cp, ['get', 'relaypools', '-n', NS, '-o', 'wide'])
    assert.match(get, /^NAME\s+DESIRED\s+READY\s+REGISTERED\s+STATUS\s+AUTH\s+REASON\s+HOST-PORT\s+PER-NODE\s+AGE/)
    assert.ok(EXAMPLE.includes('pos-relay-discovery'))
    // the Secret the example points at is the one the chart made, with the keys the CRD defaults to
    const pool = await kJson(cp, ['get', 'relaypool', 'relays', '-n', NS])
    const secret = await kJson(cp, ['get', 'secret', pool.spec.discovery.redisUrlSecretRef.name, '-n', NS])
    assert.ok(secret.data[pool.spec.discovery.redisUrlSecretRef.key] != null)
    assert.ok(secret.data[pool.spec.discovery.p2pSecretRef.key] != null)
    // pool relays refresh their own entries at the discovery Service (p2pSecretRef's apiUrlKey)
    assert.equal(b64(secret.data[pool.spec.discovery.p2pSecretRef.apiUrlKey]), `http://${pool.spec.discovery.redisUrlSecretRef.name}.${NS}.svc:8080`)
  })

  it('the hook script (with the hook\'s own RBAC) fails after its timeout while a finalizer stays, and can force it when allowed', async () => {
    // the hook's ServiceAccount and (Cluster)Role, exactly as rendered
    const rendered = await renderChart(['--show-only', 'templates/pre-delete-hook.yaml', '--set', 'cleanup.removeFinalizersOnTimeout=true'])
    const rbacOnly = rendered.split(/^---\s*$/m).filter((d) => /^kind: (ServiceAccount|ClusterRole|ClusterRoleBinding)$/m.test(d)).join('\n---\n')
    await k(cp, ['apply', '-f', '-'], rbacOnly)
    await ensureNamespace(cp, 'stuck')
    await k(cp, ['apply', '-n', 'stuck', '-f', '-'], EXAMPLE.replace('name: relays', 'name: stuck'))
    await addFinalizer('stuck', 'stuck')
    const script = readFileSync(join(CHART_DIR, 'files', 'delete-relaypools.mjs'), 'utf8')

    let r = await runHookScript(script, 'pos-relay-cleanup', { TIMEOUT_SECONDS: '2', REMOVE_FINALIZERS_ON_TIMEOUT: 'false' })
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stdout, /"event":"timeout"/)
    assert.match(r.stdout, /stuck\/stuck/)
    const still = await kJson(cp, ['get', 'relaypool', 'stuck', '-n', 'stuck'])
    assert.ok(still.metadata.deletionTimestamp != null, 'the pool is being deleted')

    r = await runHookScript(script, 'pos-relay-cleanup', { TIMEOUT_SECONDS: '1', REMOVE_FINALIZERS_ON_TIMEOUT: 'true' })
    assert.equal(r.code, 0, r.stdout + r.stderr)
    assert.match(r.stdout, /"event":"finalizers_removed"/)
    await poll('stuck pool gone', async () => (await cp.kubectl(['get', 'relaypool', 'stuck', '-n', 'stuck'])).code === 1)
    // without the patch permission (the default), forcing is refused and reported
    await k(cp, ['apply', '-f', '-'], (await renderChart(['--show-only', 'templates/pre-delete-hook.yaml'])).split(/^---\s*$/m)
      .filter((d) => /^kind: ClusterRole$/m.test(d)).join('\n'))
    await k(cp, ['apply', '-n', 'stuck', '-f', '-'], EXAMPLE.replace('name: relays', 'name: stuck2'))
    await addFinalizer('stuck2', 'stuck')
    r = await runHookScript(script, 'pos-relay-cleanup', { TIMEOUT_SECONDS: '1', REMOVE_FINALIZERS_ON_TIMEOUT: 'true' })
    assert.equal(r.code, 1)
    assert.match(r.stdout, /"event":"finalizers_not_removed".*"status":403/)
    await k(cp, ['patch', 'relaypool', 'stuck2', '-n', 'stuck', '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]'])
    for (const kind of ['clusterrolebinding', 'clusterrole']) await k(cp, ['delete', kind, 'pos-relay-cleanup'])
    await k(cp, ['delete', 'serviceaccount', 'pos-relay-cleanup', '-n', NS])
  })

  it('helm uninstall runs the pre-delete hook: every RelayPool is deleted and waited for until the operator drops its finalizer', async () => {
    // (the previous test's script run deleted every pool, across namespaces, as the hook does)
    await ensureNamespace(cp, 'apps')
    await k(cp, ['apply', '-n', NS, '-f', '-'], EXAMPLE)
    await k(cp, ['apply', '-n', 'apps', '-f', '-'], EXAMPLE.replace('name: relays', 'name: other'))
    await addFinalizer('relays', NS)
    await addFinalizer('other', 'apps')

    const helmDone = new Promise<ExecResult>((resolve) => {
      const child = spawn(cp.binaries.helm, ['uninstall', 'pos-relay', '--namespace', NS, '--timeout', '120s'], { env: { ...process.env, ...cp.env } })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (d) => { stdout += String(d) })
      child.stderr.on('data', (d) => { stderr += String(d) })
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
    })

    // the kubelet's part: when helm has created the hook Job, run its container's script as its ServiceAccount
    const job = await poll('hook Job created by helm uninstall', async () => {
      const r = await cp.kubectl(['get', 'job', 'pos-relay-cleanup', '-n', NS, '-o', 'json'])
      return r.code === 0 ? JSON.parse(r.stdout) : undefined
    }, 30_000)
    const container = job.spec.template.spec.containers[0]
    assert.deepEqual(container.command, ['node', '/hook/delete-relaypools.mjs'])
    const cm = await kJson(cp, ['get', 'configmap', 'pos-relay-cleanup', '-n', NS])
    const env = Object.fromEntries(container.env.filter((e: any) => e.value != null && e.name !== 'NODE_EXTRA_CA_CERTS').map((e: any) => [e.name, e.value]))
    const hook = runHookScript(cm.data['delete-relaypools.mjs'], job.spec.template.spec.serviceAccountName, env)

    // the operator's part: drop the finalizer once the pools are being deleted
    await poll('both pools marked for deletion', async () => {
      const items = (await kJson(cp, ['get', 'relaypools', '-A'])).items
      return items.length === 2 && items.every((p: any) => p.metadata.deletionTimestamp != null)
    }, 30_000)
    // helm is still waiting: nothing of the release was deleted yet
    await k(cp, ['get', 'deployment', 'pos-relay-operator', '-n', NS])
    assert.equal(await releaseDeleting(), 2)

    const result = await hook
    assert.equal(result.code, 0, result.stdout + result.stderr)
    assert.match(result.stdout, /"event":"done"/)
    assert.equal((await kJson(cp, ['get', 'relaypools', '-A'])).items.length, 0)

    // report the Job complete, as the job controller would
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    await k(cp, ['patch', 'job', 'pos-relay-cleanup', '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({
      status: {
        startTime: now,
        completionTime: now,
        succeeded: 1,
        conditions: [
          { type: 'SuccessCriteriaMet', status: 'True', lastProbeTime: now, lastTransitionTime: now, reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' },
          { type: 'Complete', status: 'True', lastProbeTime: now, lastTransitionTime: now, reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods' }
        ]
      }
    })])

    const uninstall = await helmDone
    assert.equal(uninstall.code, 0, uninstall.stderr)
    assert.match(uninstall.stdout, /release "pos-relay" uninstalled/)
    for (const what of ['deployment/pos-relay-operator', 'deployment/pos-relay-discovery', 'job/pos-relay-cleanup']) {
      await poll(`${what} deleted`, async () => (await cp.kubectl(['get', what, '-n', NS])).code === 1)
    }
    await poll('cluster roles deleted', async () => (await cp.kubectl(['get', 'clusterrole', 'pos-relay-operator'])).code === 1)
    // the Secrets the hook created are not the release's: they stay (a reinstall keeps its p2p secret and keys)
    for (const what of ['secret/pos-relay-discovery', 'secret/pos-relay-redis', 'secret/pos-relay-ticket-keys', 'secret/pos-relay-admin']) await k(cp, ['get', what, '-n', NS])
    // Helm never deletes CRDs from crds/
    await k(cp, ['get', 'crd', 'relaypools.pos-relay.io'])
  })
})
