import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pollUntil } from '@pos-relay/testing'
import { CLI } from '../../test/helpers/cli.ts'
import { CHART_DIR, ensureKubeBinaries, run, type ControlPlane, type ExecResult } from '../harness.ts'
import { createNode, nodeObject } from '../../../operator/test/kube-helpers.ts'

let helmHome: string | undefined
process.once('exit', () => { if (helmHome != null) rmSync(helmHome, { recursive: true, force: true }) })

/** helm without a cluster (template, lint), with throwaway config/cache dirs. */
export async function helmOffline (args: string[]): Promise<ExecResult> {
  const bins = await ensureKubeBinaries()
  helmHome ??= mkdtempSync(join(tmpdir(), 'pos-relay-helm-'))
  return await run(bins.helm, args, {
    env: { HELM_CONFIG_HOME: join(helmHome, 'config'), HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_DATA_HOME: join(helmHome, 'data'), KUBECONFIG: '/nonexistent' },
    timeoutMs: 120_000
  })
}

/** `helm template` of the chart; throws with helm's stderr on failure. */
export async function renderChart (setArgs: string[] = [], opts: { release?: string, namespace?: string, includeCrds?: boolean } = {}): Promise<string> {
  const r = await helmOffline(['template', opts.release ?? 'pos-relay', CHART_DIR, '--namespace', opts.namespace ?? 'pos-relay',
    ...(opts.includeCrds === true ? ['--include-crds'] : []), ...setArgs])
  assert.equal(r.code, 0, `helm template ${setArgs.join(' ')} failed:\n${r.stderr}`)
  return r.stdout
}

export interface Doc { kind: string, name: string, namespace?: string, text: string }

/** Splits multi-document YAML (helm output) into documents with their kind/name (top-level keys only). */
export function splitDocs (yaml: string): Doc[] {
  return yaml.split(/^---\s*$/m).map((text) => {
    const kind = /^kind:\s*(\S+)/m.exec(text)?.[1]
    const name = /^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]{2}name:\s*(\S+)/m.exec(text)?.[1]
    const namespace = /^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]{2}namespace:\s*(\S+)/m.exec(text)?.[1]
    return { kind: kind ?? '', name: (name ?? '').replace(/^"|"$/g, ''), ...(namespace != null ? { namespace } : {}), text }
  }).filter((d) => d.kind !== '')
}

/** kubectl that must succeed; returns stdout. */
export async function k (cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const r = await cp.kubectl(args, input)
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}`)
  return r.stdout
}

export async function kJson (cp: ControlPlane, args: string[]): Promise<any> {
  return JSON.parse(await k(cp, [...args, '-o', 'json']))
}

export async function ensureNamespace (cp: ControlPlane, name: string): Promise<void> {
  const r = await cp.kubectl(['get', 'namespace', name])
  if (r.code !== 0) await k(cp, ['create', 'namespace', name])
}

/**
 * What the chart creates for RelayPools in `namespace` (the namespace and its discovery Secret,
 * with `apiUrl` when relays refresh through the API), and Ready nodes with no kubelet behind them
 * (`nodes`: name → InternalIP, optionally a public-address annotation); their own addresses are
 * never dialled.
 */
export async function poolFixture (cp: ControlPlane, opts: {
  namespace: string
  secret?: string
  redisUrl: string
  p2pSecret: string
  apiUrl?: string
  nodes: Array<{ name: string, internalIP: string, publicAddress?: string }>
}): Promise<void> {
  await k(cp, ['create', 'namespace', opts.namespace])
  await k(cp, ['create', 'secret', 'generic', opts.secret ?? 'pos-relay-discovery', '-n', opts.namespace, `--from-literal=redis-url=${opts.redisUrl}`, `--from-literal=p2p-secret=${opts.p2pSecret}`,
    ...(opts.apiUrl != null ? [`--from-literal=api-url=${opts.apiUrl}`] : [])])
  for (const n of opts.nodes) {
    await createNode(cp, nodeObject(n.name, [['InternalIP', n.internalIP]], n.publicAddress != null ? { 'pos-relay.io/public-address': n.publicAddress } : {}))
  }
}

/** pollUntil with this suite's defaults: 15 s, every 200 ms */
export async function poll<T> (what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000, intervalMs = 200): Promise<T> {
  return await pollUntil(what, fn, { timeoutMs, intervalMs })
}

/** A kubeconfig for `serviceAccount` (a token from the TokenRequest API), written to `dir`. */
export async function serviceAccountKubeconfig (cp: ControlPlane, namespace: string, serviceAccount: string, dir: string): Promise<string> {
  const token = (await k(cp, ['create', 'token', serviceAccount, '-n', namespace, '--duration=10m'])).trim()
  const file = join(dir, `kubeconfig-${namespace}-${serviceAccount}-${Math.random().toString(36).slice(2)}`)
  writeFileSync(file, JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: cp.server, 'certificate-authority': cp.tls.caFile } }],
    users: [{ name: 'u', user: { token } }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u', namespace } }],
    'current-context': 'x'
  }))
  return file
}

/** Reports a Job complete, as the job controller would (there is no kubelet in this tier). */
export async function completeJob (cp: ControlPlane, name: string, namespace: string): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
  const done = { lastProbeTime: now, lastTransitionTime: now, reason: 'CompletionsReached', message: 'Reached expected number of succeeded pods', status: 'True' }
  await k(cp, ['patch', 'job', name, '-n', namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify({
    status: { startTime: now, completionTime: now, succeeded: 1, conditions: [{ type: 'SuccessCriteriaMet', ...done }, { type: 'Complete', ...done }] }
  })])
}

export interface HookedHelm { helm: ExecResult, hook?: ExecResult, job?: any }

/**
 * Runs `helm install|upgrade` while playing the kubelet for the accounts hook Job (pre-install,
 * pre-upgrade): once helm has created the Job, runs its container's args with this checkout's
 * `pos-relay`, as the hook's ServiceAccount, then reports the Job complete if the run succeeded.
 */
export async function helmWithAccountsHook (cp: ControlPlane, args: string[], opts: { namespace: string, release?: string, tmp: string }): Promise<HookedHelm> {
  const jobName = `${opts.release ?? 'pos-relay'}-accounts-secrets`
  const child = spawn(cp.binaries.helm, [...args, '--timeout', '120s'], { env: { ...process.env, ...cp.env } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += String(d) })
  child.stderr.on('data', (d) => { stderr += String(d) })
  const helmDone = new Promise<ExecResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })))
  let finished = false
  void helmDone.then(() => { finished = true })
  const job = await pollUntil('accounts hook Job created by helm (or helm done)', async () => {
    if (finished) return null
    const r = await cp.kubectl(['get', 'job', jobName, '-n', opts.namespace, '-o', 'json'])
    return r.code === 0 ? JSON.parse(r.stdout) : undefined
  }, { timeoutMs: 60_000, intervalMs: 200 })
  if (job == null) return { helm: await helmDone } // no hook in this release (accounts off or existing Secrets)
  const spec = job.spec.template.spec
  const kubeconfig = await serviceAccountKubeconfig(cp, opts.namespace, spec.serviceAccountName, opts.tmp)
  const hook = await run(process.execPath, [CLI, ...spec.containers[0].args, `--kubeconfig=${kubeconfig}`], { timeoutMs: 60_000 })
  if (hook.code === 0) await completeJob(cp, jobName, opts.namespace)
  else child.kill('SIGTERM')
  return { helm: await helmDone, hook, job }
}
