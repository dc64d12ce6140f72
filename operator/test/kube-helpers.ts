// Helpers for the integration tests against a real kube-apiserver: the test
// plays kube-scheduler (binds pods to the node the operator pinned them to) and
// the kubelet (writes pod status through the status subresource).
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pollUntil, spawnLines, type LineProcess } from '@pos-relay/testing'
import type { ControlPlane } from '../../e2e/kube/harness.ts'

export async function api (cp: ControlPlane, method: string, path: string, body?: unknown, contentType?: string): Promise<any> {
  const r = await cp.request(method, path, body, contentType)
  if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 500)}`)
  return r.body
}

export async function tryApi (cp: ControlPlane, method: string, path: string): Promise<{ status: number, body: any }> {
  const r = await cp.request(method, path)
  return { status: r.status, body: r.body }
}

export function nodeObject (name: string, addresses: Array<[string, string]>, annotations: Record<string, string> = {}, labels: Record<string, string> = {}): any {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, annotations, labels: { 'kubernetes.io/hostname': name, ...labels } },
    status: {
      addresses: addresses.map(([type, address]) => ({ type, address })),
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'test node', lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }]
    }
  }
}

export async function createNode (cp: ControlPlane, node: any): Promise<void> {
  await api(cp, 'POST', '/api/v1/nodes', node)
  // status is a subresource: write it the way the kubelet does
  await api(cp, 'PATCH', `/api/v1/nodes/${node.metadata.name}/status`, { status: node.status }, 'application/merge-patch+json')
  // the API server taints new nodes node.kubernetes.io/not-ready:NoSchedule; the node
  // lifecycle controller (not running here) removes it once the node is Ready
  await api(cp, 'PATCH', `/api/v1/nodes/${node.metadata.name}`, { spec: { taints: node.spec?.taints ?? null } }, 'application/merge-patch+json')
}

const ts = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z')

/** the node the operator pinned the pod to (its required node affinity) */
export function pinnedNode (pod: any): string {
  const v = pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]?.matchFields?.[0]?.values?.[0]
  assert.ok(v != null, `pod ${pod.metadata.name} is not pinned to a node`)
  return v
}

/** events.k8s.io/v1 Events about a RelayPool (optionally one reason), oldest first */
export async function poolEvents (cp: ControlPlane, ns: string, pool: string, reason?: string): Promise<any[]> {
  const list = await api(cp, 'GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`)
  return list.items
    .filter((e: any) => e.regarding?.kind === 'RelayPool' && e.regarding.name === pool && (reason == null || e.reason === reason))
    .sort((a: any, b: any) => Date.parse(a.eventTime) - Date.parse(b.eventTime))
}

/** kube-scheduler: bind the pod to its pinned node */
export async function schedule (cp: ControlPlane, ns: string, name: string): Promise<any> {
  const pod = await api(cp, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`)
  if (pod.spec.nodeName == null) {
    await api(cp, 'POST', `/api/v1/namespaces/${ns}/pods/${name}/binding`, {
      apiVersion: 'v1', kind: 'Binding', metadata: { name, namespace: ns }, target: { apiVersion: 'v1', kind: 'Node', name: pinnedNode(pod) }
    })
  }
  return await api(cp, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`)
}

/** kube-scheduler cannot place the pod: the hostPort is taken on its node */
export async function unschedulable (cp: ControlPlane, ns: string, name: string, message = "0/3 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."): Promise<void> {
  await api(cp, 'PATCH', `/api/v1/namespaces/${ns}/pods/${name}/status`, {
    status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastTransitionTime: ts() }] }
  }, 'application/strategic-merge-patch+json')
}

/** the kubelet: the relay container runs; Ready or not */
export async function kubelet (cp: ControlPlane, ns: string, name: string, ready: boolean, podIP = '10.244.0.10'): Promise<void> {
  const pod = await schedule(cp, ns, name)
  const c = pod.spec.containers[0]
  await api(cp, 'PATCH', `/api/v1/namespaces/${ns}/pods/${name}/status`, {
    status: {
      phase: 'Running',
      podIP,
      podIPs: [{ ip: podIP }],
      hostIP: '10.1.0.1',
      startTime: pod.status?.startTime ?? ts(),
      conditions: [
        { type: 'Initialized', status: 'True', lastTransitionTime: ts() },
        { type: 'ContainersReady', status: ready ? 'True' : 'False', lastTransitionTime: ts() },
        { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: ts() }
      ],
      containerStatuses: [{ name: c.name, ready, started: true, restartCount: 0, image: c.image, imageID: `docker-pullable://${c.image}`, containerID: 'containerd://0123', state: { running: { startedAt: ts() } } }]
    }
  }, 'application/strategic-merge-patch+json')
}

/** `pos-relay` as built in this checkout; POS_RELAY_CLI runs another build of it (e.g. an installed one) */
export const CLI = process.env.POS_RELAY_CLI ?? fileURLToPath(new URL('../../packages/cli/bin/pos-relay.js', import.meta.url))

export type CliProcess = LineProcess

/** `pos-relay ...args` on this Node, with `env` over `baseEnv` (see @pos-relay/testing's spawnLines) */
export function spawnCli (args: string[], env: Record<string, string> = {}, baseEnv: NodeJS.ProcessEnv = process.env): CliProcess {
  return spawnLines(process.execPath, [CLI, ...args], { env: { ...baseEnv, ...env }, label: `pos-relay ${args.join(' ')}`, echo: process.env.E2E_VERBOSE != null })
}

/**
 * The kubelet running a relay pod's container, on loopback: the identity
 * Secret's config.json written where the pod mounts it, environment variables
 * resolved from their Secrets, the container's args as rendered, and only the
 * listen addresses moved to loopback: the relay port to `opts.port` (the
 * hostPort the container's 7373 would be mapped to), else a free port, and the
 * metrics port to a free one (the container would own 7373/9373 in its own
 * network namespace).
 */
export async function runRelayContainer (cp: ControlPlane, pod: any, dir: string, opts: { port?: number } = {}): Promise<CliProcess & { started: any, ready: any, syncVolumes: () => Promise<void> }> {
  const ns = pod.metadata.namespace
  const c = pod.spec.containers[0]
  const secretValue = async (name: string, key: string, optional = false): Promise<string | undefined> => {
    const s = await api(cp, 'GET', `/api/v1/namespaces/${ns}/secrets/${name}`)
    if (s.data?.[key] == null && optional) return undefined // as the kubelet: an optional key that is missing sets no variable
    assert.ok(s.data?.[key] != null, `Secret ${ns}/${name} has no key ${key}`)
    return Buffer.from(s.data[key], 'base64').toString('utf8')
  }
  const env: Record<string, string> = {}
  for (const e of c.env ?? []) {
    if (e.value != null) env[e.name] = e.value
    else if (e.valueFrom?.secretKeyRef != null) {
      const ref = e.valueFrom.secretKeyRef
      const v = await secretValue(ref.name, ref.key, ref.optional === true)
      if (v != null) env[e.name] = v
    } else throw new Error(`env ${e.name}: unsupported source ${JSON.stringify(e.valueFrom)}`)
  }
  const volume = pod.spec.volumes.find((v: any) => v.name === 'identity')
  const config = join(dir, `${pod.metadata.name}.json`)
  writeFileSync(config, (await secretValue(volume.secret.secretName, 'config.json'))!, { mode: 0o600 })
  // the other Secret and ConfigMap volumes (spec.auth's ticket keys and tiers, the limits
  // ConfigMap), as the kubelet mounts them: each item at its path, in a folder of ours standing
  // for the mountPath; variables and arguments naming a file under a mountPath are pointed at
  // that folder. syncVolumes() is the kubelet's periodic refresh of a mounted volume: each file
  // replaced at once (written aside, then renamed over it, as its symlink swap does)
  const args = [...c.args]
  args[args.indexOf('--config') + 1] = config
  const volumes: Array<{ v: any, local: string }> = []
  for (const m of c.volumeMounts ?? []) {
    const v = pod.spec.volumes.find((x: any) => x.name === m.name)
    if (v == null || v.name === 'identity' || (v.secret == null && v.configMap == null)) continue
    const local = join(dir, `${pod.metadata.name}-${v.name}`)
    mkdirSync(local, { recursive: true })
    volumes.push({ v, local })
    for (const [name, value] of Object.entries(env)) if (value.startsWith(`${m.mountPath}/`)) env[name] = join(local, value.slice(m.mountPath.length + 1))
    for (let i = 0; i < args.length; i++) if (args[i]!.startsWith(`${m.mountPath}/`)) args[i] = join(local, args[i]!.slice(m.mountPath.length + 1))
  }
  const syncVolumes = async (): Promise<void> => {
    for (const { v, local } of volumes) {
      const source = v.secret != null
        ? Object.fromEntries(Object.entries((await api(cp, 'GET', `/api/v1/namespaces/${ns}/secrets/${v.secret.secretName}`)).data ?? {}).map(([k, b]) => [k, Buffer.from(String(b), 'base64').toString('utf8')]))
        : (await api(cp, 'GET', `/api/v1/namespaces/${ns}/configmaps/${v.configMap.name}`)).data ?? {}
      const items: Array<{ key: string, path: string }> = (v.secret ?? v.configMap).items ?? Object.keys(source).map((key) => ({ key, path: key }))
      for (const item of items) {
        assert.ok(source[item.key] != null, `volume ${v.name}: no key ${item.key}`)
        writeFileSync(join(local, `.${item.path}.new`), source[item.key] as string, { mode: 0o600 })
        renameSync(join(local, `.${item.path}.new`), join(local, item.path))
      }
    }
  }
  await syncVolumes()
  // commander keeps the last value of a repeated option
  args.push('--host', '127.0.0.1', '--port', String(opts.port ?? 0), '--metrics-host', '127.0.0.1', '--metrics-port', '0')
  // the variables the relay reads, exactly as the pod sets them (none inherited from this process)
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(REDIS_URL|LOG_LEVEL|MAX_|IP_|PEER_|HANDSHAKE_|RELAY_|API_URL|AUTH_|TICKET_KEYS_|TIERS_FILE|ACCOUNT_|METERING_|POS_RELAY_(?!CACHE))/.test(k)))
  const p = spawnCli(args, env, clean)
  const ready = await p.waitForJson((o) => o.event === 'relay_ready', 30_000)
  const started = await until('relay_started log line', async () => p.stderr.map((l) => { try { return JSON.parse(l) } catch { return undefined } }).find((o) => o?.event === 'relay_started'), 5000)
  return { ...p, started, ready, syncVolumes }
}

export interface OperatorProc extends CliProcess {
  metricsPort: number
  identity: string
  metrics: () => Promise<string>
  metric: (name: string, labels?: Record<string, string>) => Promise<number | undefined>
}

export const OPERATOR_FAST_LEASE = ['--lease-duration', '3', '--renew-deadline', '2', '--retry-period', '0.5']

export async function startOperator (cp: ControlPlane, extra: string[] = [], env: Record<string, string> = {}): Promise<OperatorProc> {
  const p = spawnCli(['operator', '--kubeconfig', cp.kubeconfigPath, '--metrics-port', '0', '--metrics-host', '127.0.0.1', '--leader-election-namespace', 'default', ...OPERATOR_FAST_LEASE, ...extra], { POS_RELAY_LOG_LEVEL: 'info', ...env })
  const started = await p.waitForJson((o) => o.event === 'operator_started', 30_000)
  const metrics = async (): Promise<string> => await httpGet(`http://127.0.0.1:${started.metrics_port}/metrics`)
  return {
    ...p,
    metricsPort: started.metrics_port,
    identity: started.identity,
    metrics,
    metric: async (name, labels = {}) => metricValue(await metrics(), name, labels)
  }
}

export function metricValue (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    const m = /^([^{ ]+)(\{([^}]*)\})? (\S+)$/.exec(line)
    if (m == null || m[1] !== name) continue
    const ls: Record<string, string> = {}
    for (const kv of (m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)) ls[kv[1]!] = kv[2]!
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) sum = (sum ?? 0) + Number(m[4])
  }
  return sum
}

export async function httpGet (url: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { body += c })
      res.on('end', () => { resolve(body) })
    })
    req.on('error', reject)
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.end()
  })
}

/** pollUntil with this suite's defaults: 20 s, every 100 ms */
export async function until<T> (what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  return await pollUntil(what, fn, { timeoutMs, intervalMs })
}
