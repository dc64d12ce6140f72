/**
 * Operator convergence benchmark: RelayPools over Node objects in a real
 * kube-apiserver (+ etcd), the operator as a process (`pos-relay operator`),
 * a real Redis as the registry.
 *
 *   node operator/bench/convergence.ts [--pools 100] [--nodes 50] [--replicas 3] [--per-node-pools 10]
 *
 * Phase 1 (create): all pools applied at once → time until every relay pod
 * and identity Secret exists and every pool's status lists all its pods.
 * Phase 2 (ready): the bench plays scheduler + kubelet (binds every pod to the
 * node it is pinned to and marks it Ready) → time until every relay is in
 * Redis and every pool reports Ready=True.
 * Then 15 s idle (heartbeats only), and the deletion of every pool
 * (finalizers) → time until all are gone and the registry is empty.
 *
 * Reported: wall times, operator RSS/CPU, API requests the operator made
 * (its own rest_client_requests_total counter, by phase and method),
 * reconciles. Prints a markdown table and writes it as the `operator`
 * section of docs/benchmarks.md (`--out <file>` for another document,
 * `--out -` for stdout only).
 */
import { readFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { createRedisStore } from '@pos-relay/discovery'
import { KubeClient, loadKubeConfig } from '@pos-relay/operator'
import { startRedis, writeDocSection } from '@pos-relay/testing'
import { CRD_FILE, pinnedVersions, startControlPlane } from '../../e2e/kube/harness.ts'
import { createNode, kubelet, metricValue, nodeObject, startOperator, until } from '../test/kube-helpers.ts'

const { values } = parseArgs({
  options: {
    pools: { type: 'string', default: '100' },
    nodes: { type: 'string', default: '50' },
    replicas: { type: 'string', default: '3' },
    'per-node-pools': { type: 'string', default: '10' },
    workers: { type: 'string', default: '4' },
    out: { type: 'string', default: fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url)) }
  }
})
const POOLS = Number(values.pools)
const NODES = Number(values.nodes)
const REPLICAS = Number(values.replicas)
const PER_NODE_POOLS = Math.min(Number(values['per-node-pools']), POOLS)
const PER_NODE_ELIGIBLE = Math.min(10, NODES) // perNode pools select the nodes labelled edge=true
const NS = 'bench'
const META = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1'

function procStat (pid: number): { rssMiB: number, hwmMiB: number, cpuS: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0)
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  const ticks = Number(stat[11]) + Number(stat[12]) // utime + stime (fields 14, 15)
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024, cpuS: ticks / 100 }
}

const t = (ms: number): string => `${(ms / 1000).toFixed(1)} s`
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' / ')

async function main (): Promise<void> {
  const started = Date.now()
  const loadStart = load()
  process.stderr.write('starting the control plane and Redis...\n')
  const cp = await startControlPlane({ crds: [CRD_FILE] })
  const redis = await startRedis()
  const store = createRedisStore({ url: redis.url })
  const client = new KubeClient(loadKubeConfig(cp.kubeconfigPath))
  const ops: Array<{ kill: (s?: NodeJS.Signals) => Promise<number | string> }> = []
  try {
    await cp.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } })
    await cp.request('POST', `/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'discovery' }, stringData: { 'redis-url': redis.url } })
    process.stderr.write(`creating ${NODES} nodes...\n`)
    for (let i = 0; i < NODES; i++) {
      // TEST-NET-3 addresses: only written into objects, never contacted
      await createNode(cp, nodeObject(`node-${String(i).padStart(3, '0')}`, [['ExternalIP', `203.0.113.${i + 1}`], ['InternalIP', `10.2.${Math.floor(i / 250)}.${(i % 250) + 1}`]], {}, i < PER_NODE_ELIGIBLE ? { edge: 'true' } : {}))
    }

    // production lease timings (15/10/2 s), not the tests' short ones
    const op = await startOperator(cp, ['--relay-image', 'pos-relay:bench', '--workers', values.workers!, '--log-level', 'warn', '--lease-duration', '15', '--renew-deadline', '10', '--retry-period', '2'])
    ops.push(op)
    const pid = op.child.pid!
    await until('leader', async () => (await op.metric('leader_election_master_status')) === 1, 30_000)
    const requests = async (): Promise<Record<string, number>> => {
      const text = await op.metrics()
      const out: Record<string, number> = {}
      for (const m of ['GET', 'WATCH', 'POST', 'PUT', 'PATCH', 'DELETE']) out[m] = metricValue(text, 'rest_client_requests_total', { method: m }) ?? 0
      out.total = Object.values(out).reduce((a, b) => a + b, 0)
      out.reconciles = metricValue(text, 'controller_runtime_reconcile_total') ?? 0
      out.errors = metricValue(text, 'controller_runtime_reconcile_errors_total') ?? 0
      out.heapMiB = (metricValue(text, 'nodejs_heap_size_used_bytes') ?? 0) / 2 ** 20
      return out
    }
    const diff = (a: Record<string, number>, b: Record<string, number>): Record<string, number> => Object.fromEntries(Object.keys(b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]))
    const idleStat = procStat(pid)
    const r0 = await requests()

    // ---------------------------------------------------------------- phase 1: create
    const pools = Array.from({ length: POOLS }, (_, i) => {
      const perNode = i < PER_NODE_POOLS
      return {
        apiVersion: 'pos-relay.io/v1alpha1',
        kind: 'RelayPool',
        metadata: { name: `pool-${String(i).padStart(3, '0')}`, namespace: NS },
        spec: {
          ...(perNode ? { perNode: true, nodeSelector: { edge: 'true' } } : { replicas: REPLICAS }),
          // each pool its own hostPort: at most one relay per node and port
          hostPort: 20000 + i,
          discovery: { redisUrlSecretRef: { name: 'discovery' }, ttlSeconds: 30 },
          limits: { maxCircuits: 512 }
        }
      }
    })
    const expectedPods = (POOLS - PER_NODE_POOLS) * REPLICAS + PER_NODE_POOLS * PER_NODE_ELIGIBLE
    process.stderr.write(`applying ${POOLS} RelayPools (${expectedPods} relays)...\n`)
    const t0 = Date.now()
    const list = { apiVersion: 'v1', kind: 'List', items: pools }
    const applied = await cp.kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(list))
    if (applied.code !== 0) throw new Error(applied.stderr)
    const tApplied = Date.now() - t0
    let tPods = 0
    await until('all pods and Secrets created', async () => {
      const pods = await client.get<any>(`/api/v1/namespaces/${NS}/pods`, { query: { labelSelector: 'app.kubernetes.io/managed-by=pos-relay-operator' }, accept: META })
      const secrets = await client.get<any>(`/api/v1/namespaces/${NS}/secrets`, { query: { labelSelector: 'app.kubernetes.io/component=relay-identity' }, accept: META })
      if (tPods === 0 && pods.items.length >= expectedPods) tPods = Date.now() - t0
      return pods.items.length >= expectedPods && secrets.items.length >= expectedPods
    }, 600_000, 250)
    const tSecrets = Date.now() - t0
    await until('every status lists its pods', async () => {
      const l = await client.get<any>(`/apis/pos-relay.io/v1alpha1/namespaces/${NS}/relaypools`)
      return l.items.length === POOLS && l.items.every((p: any) => p.status?.observedGeneration === p.metadata.generation && (p.status?.relays?.length ?? -1) === p.status?.desiredRelays && p.status.desiredRelays > 0)
    }, 600_000, 250)
    const tStatus = Date.now() - t0
    const s1 = procStat(pid)
    const r1 = await requests()

    // ---------------------------------------------------------------- phase 2: ready → registered
    process.stderr.write(`playing scheduler + kubelet for ${expectedPods} pods...\n`)
    const podNames = (await client.get<any>(`/api/v1/namespaces/${NS}/pods`, { query: { labelSelector: 'app.kubernetes.io/managed-by=pos-relay-operator' }, accept: META })).items.map((p: any) => p.metadata.name)
    const t1 = Date.now()
    for (let i = 0; i < podNames.length; i += 8) {
      await Promise.all(podNames.slice(i, i + 8).map(async (name: string) => { await kubelet(cp, NS, name, true) }))
    }
    const tKubelet = Date.now() - t1
    await until('every relay registered', async () => (await store.list()).length >= expectedPods, 600_000, 250)
    const tRegistered = Date.now() - t1
    await until('every pool Ready', async () => {
      const l = await client.get<any>(`/apis/pos-relay.io/v1alpha1/namespaces/${NS}/relaypools`)
      return l.items.every((p: any) => p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') && p.status.registeredRelays === p.status.desiredRelays)
    }, 600_000, 250)
    const tReady = Date.now() - t1
    const s2 = procStat(pid)
    const r2 = await requests()

    // ---------------------------------------------------------------- idle: heartbeats only
    process.stderr.write('idle 15 s...\n')
    await sleep(15_000)
    const s3 = procStat(pid)
    const r3 = await requests()
    const registeredAfterIdle = (await store.list()).length

    // ---------------------------------------------------------------- delete every pool
    process.stderr.write('deleting every pool...\n')
    const t3 = Date.now()
    const del = await cp.kubectl(['delete', 'relaypools', '--all', '-n', NS, '--wait=false'])
    if (del.code !== 0) throw new Error(del.stderr)
    await until('all pools gone and the registry empty', async () => {
      const l = await client.get<any>(`/apis/pos-relay.io/v1alpha1/namespaces/${NS}/relaypools`, { accept: META })
      return (l.items ?? []).length === 0 && (await store.list()).length === 0
    }, 600_000, 250)
    const tDeleted = Date.now() - t3
    const r4 = await requests()
    const s4 = procStat(pid)

    const d1 = diff(r0, r1)
    const d2 = diff(r1, r2)
    const d3 = diff(r2, r3)
    const d4 = diff(r3, r4)
    const fmt = (d: Record<string, number>): string => `${d.total} (${['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'WATCH'].filter((m) => (d[m] ?? 0) > 0).map((m) => `${m} ${d[m]}`).join(', ')})`
    const mem = (s: { rssMiB: number, hwmMiB: number }, r: Record<string, number>): string => `${s.rssMiB.toFixed(0)} MiB (${s.hwmMiB.toFixed(0)}); heap ${(r.heapMiB ?? 0).toFixed(0)} MiB`
    const v = pinnedVersions()
    const date = new Date().toISOString().slice(0, 10)
    const lines = [
      `Generated by \`npx node operator/bench/convergence.ts\` on ${date}. Do not edit by hand: re-run the script.`,
      '',
      `Real kube-apiserver ${v.k8s} + etcd ${v.etcd} on loopback, the operator as a process (\`pos-relay operator\`, ${values.workers} workers, leader election on, production lease timings 15/10/2 s), Redis ${redis.url.startsWith('redis') ? '(Debian redis-server)' : ''} as the registry; ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores (API server, etcd, operator and bench driver share them), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, Node ${process.version}; load average (1 / 5 / 15 min) ${loadStart} at the start, ${load()} at the end. ` +
        `${POOLS - PER_NODE_POOLS} pools with \`replicas: ${REPLICAS}\` and ${PER_NODE_POOLS} with \`perNode: true\` on ${PER_NODE_ELIGIBLE} labelled nodes (${expectedPods} relays over ${NODES} Node objects), each pool its own hostPort; applied as one \`kubectl apply --server-side\`. ` +
        'No kubelet or scheduler: in phase 2 the bench binds each pod and writes its Ready status (8 at a time). API requests are the operator\'s own `rest_client_requests_total`.',
      '',
      '| Phase | Wall time | API requests by the operator | Reconciles (errors) | Operator RSS (peak); JS heap used | Operator CPU |',
      '|---|---|---|---|---|---|',
      `| idle before apply (${NODES} nodes cached) | | | | ${mem(idleStat, r0)} | ${idleStat.cpuS.toFixed(1)} s since start |`,
      `| 1. apply → all ${expectedPods} pods created | **${t(tPods)}** (apply returned after ${t(tApplied)}; Secrets ${t(tSecrets)}) | | | | |`,
      `| 1. apply → every status lists all its pods | **${t(tStatus)}** | ${fmt(d1)} | ${d1.reconciles} (${d1.errors}) | ${mem(s1, r1)} | ${(s1.cpuS - idleStat.cpuS).toFixed(1)} s |`,
      `| 2. pods Ready → all registered in Redis | **${t(tRegistered)}** (the bench needed ${t(tKubelet)} to write the pod statuses) | | | | |`,
      `| 2. pods Ready → every pool Ready=True | **${t(tReady)}** | ${fmt(d2)} | ${d2.reconciles} (${d2.errors}) | ${mem(s2, r2)} | ${(s2.cpuS - s1.cpuS).toFixed(1)} s |`,
      `| idle 15 s (${registeredAfterIdle} relays heartbeating in Redis) | | ${fmt(d3)} | ${d3.reconciles} (${d3.errors}) | ${mem(s3, r3)} | ${(s3.cpuS - s2.cpuS).toFixed(1)} s |`,
      `| delete all pools → finalizers done, registry empty | **${t(tDeleted)}** | ${fmt(d4)} | ${d4.reconciles} (${d4.errors}) | ${mem(s4, r4)} | ${(s4.cpuS - s3.cpuS).toFixed(1)} s |`,
      '',
      `Per relay in phase 1: ${((d1.total ?? 0) / expectedPods).toFixed(2)} API requests. Bench total ${t(Date.now() - started)}.`
    ]
    process.stdout.write(lines.join('\n') + '\n')
    if (values.out !== '-') {
      writeDocSection(values.out!, {
        id: 'operator',
        title: `Operator convergence, ${POOLS} RelayPools over ${NODES} Nodes`,
        date,
        headline: `apply -> all ${expectedPods} pods created ${t(tPods)}, every status written ${t(tStatus)}; pods Ready -> every pool Ready ${t(tReady)}; ${((d1.total ?? 0) / expectedPods).toFixed(2)} API requests per relay; operator RSS ${s4.rssMiB.toFixed(0)} MiB`,
        command: 'npx node operator/bench/convergence.ts',
        body: lines.join('\n')
      })
      process.stderr.write(`wrote section "operator" of ${values.out}\n`)
    }
  } finally {
    for (const o of ops) await o.kill('SIGTERM')
    client.close()
    await store.close()
    await redis.stop()
    await cp.stop()
  }
}

await main()
