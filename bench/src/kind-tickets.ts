/**
 * `npm run bench:kind-tickets`: discovery's ticket issuance through the chart's Service on a real
 * kind cluster (issue 11's benchmark), written as the `kind-tickets` section of docs/benchmarks.md.
 *
 * The cluster and the chart exactly as `make e2e-kind` makes them (e2e/kind/kind.ts: the image built
 * from relay-image/Dockerfile, the packaged chart with accounts on, one discovery replica behind a
 * NodePort Service published on 127.0.0.1:30080). The admin secret is read from the Secret the
 * chart's hook Job created; one account is made through the admin API; then tickets are requested
 * for distinct peer ids, one at a time and with several requests in flight, through the Service
 * (kube-proxy, the node's iptables, the pod). Discovery's CPU comes from its own
 * process_cpu_seconds_total, scraped through the same Service.
 *
 * Needs what `make e2e-kind` needs (root, Docker from Debian, the cached images; the first run
 * builds them). It creates its own cluster (pos-relay-bench) and deletes it at the end; it cannot
 * run while the kind suite runs (both publish 127.0.0.1:30080). Bounded: deadline 30 min.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CACHE_ROOT, checkPrerequisites, DISCOVERY_URL, ensureDocker, KindCluster, NAMESPACE, prepareSupply, RELEASE } from '../../e2e/kind/kind.ts'
import { loadavg, machineInfo, type LoadAvg } from './lib/machine.ts'
import { BENCH_DOC, benchSection, f, machineTable, mdTable, writeSection } from './lib/report.ts'
import { benchLog, errMsg, runScript } from './lib/script.ts'
import { median } from './lib/stats.ts'

const log = benchLog('kind-tickets')
const N = Number(process.env.KIND_TICKETS_N ?? 2000)
const CONCURRENCY = [1, 8, 32]

interface Pass { concurrency: number, n: number, wallS: number, perSecond: number, p50Ms: number, p99Ms: number, cpuUsPerTicket: number, errors: number }

async function discoveryCpuSeconds (): Promise<number> {
  const text = await (await fetch(`${DISCOVERY_URL}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const m = /^process_cpu_seconds_total(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(text)
  if (m == null) throw new Error('discovery /metrics has no process_cpu_seconds_total')
  return Number(m[1])
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN

async function main (): Promise<void> {
  const started = Date.now()
  const load: Record<string, LoadAvg> = { start: loadavg() }
  const errors: string[] = []
  const passes: Pass[] = []
  const docker = await ensureDocker()
  const supply = await prepareSupply(log)
  const tools = await checkPrerequisites({ ...process.env, ...supply.env })
  const cluster = new KindCluster(tools, supply, process.env.POS_RELAY_KIND_BENCH_CLUSTER ?? 'pos-relay-bench')
  try {
    log('creating the cluster')
    await cluster.create()
    await cluster.buildAndLoadImages()
    await cluster.installChart(await cluster.packageChart())
    load['cluster up'] = loadavg()
    const secret = await cluster.kubectl(['get', 'secret', `${RELEASE}-admin`, '-n', NAMESPACE, '-o', 'jsonpath={.data.admin-secret}'])
    if (secret.code !== 0) throw new Error(`reading the admin Secret: ${secret.stderr}`)
    const admin = Buffer.from(secret.stdout, 'base64').toString('utf8')
    const created = await fetch(`${DISCOVERY_URL}/api/admin/accounts`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench', tier: 'pro' }) })
    if (created.status !== 201 && created.status !== 200) throw new Error(`creating the account: ${created.status} ${await created.text()}`)
    const apiKey = (await created.json() as { api_key: string }).api_key
    log(`generating ${N} peer ids`)
    const peers = await Promise.all(Array.from({ length: N }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    const issue = async (peer: string): Promise<boolean> => {
      const res = await fetch(`${DISCOVERY_URL}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: peer }), signal: AbortSignal.timeout(10_000) })
      await res.arrayBuffer()
      return res.status === 200
    }
    for (let i = 0; i < 50; i++) await issue(peers[i]!) // warm-up
    for (const concurrency of CONCURRENCY) {
      const latencies: number[] = []
      let failed = 0
      let next = 0
      const cpu0 = await discoveryCpuSeconds()
      const t0 = performance.now()
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < N) {
          const peer = peers[next++]!
          const s = performance.now()
          const ok = await issue(peer).catch(() => false)
          latencies.push(performance.now() - s)
          if (!ok) failed++
        }
      }))
      const wallS = (performance.now() - t0) / 1000
      const cpuS = await discoveryCpuSeconds() - cpu0
      latencies.sort((a, b) => a - b)
      const pass = { concurrency, n: N, wallS, perSecond: (N - failed) / wallS, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), cpuUsPerTicket: cpuS * 1e6 / N, errors: failed }
      passes.push(pass)
      log(`${concurrency} in flight: ${f(pass.perSecond, 0)} tickets/s, p50 ${f(pass.p50Ms, 1)} ms, p99 ${f(pass.p99Ms, 1)} ms, discovery CPU ${f(pass.cpuUsPerTicket, 0)} µs/ticket, ${failed} failed`)
    }
    load.end = loadavg()
  } catch (err) {
    errors.push(errMsg(err))
    log(`FAILED: ${String((err as Error)?.stack ?? err)}`)
  } finally {
    await cluster.delete()
    if (docker.started) log('the Docker engine this bench started keeps running (make e2e-kind-down stops it)')
  }

  const m = machineInfo()
  const body = [
    `Generated by \`npm run bench:kind-tickets\` (bench/src/kind-tickets.ts) in ${f((Date.now() - started) / 1000, 0)} s, cluster creation included. Do not edit by hand: re-run the script.`,
    '',
    '### Method',
    '',
    `- A kind cluster as \`make e2e-kind\` makes it (1 control plane, 2 workers; image from relay-image/Dockerfile; the packaged chart with its defaults for kind: accounts on, **one discovery replica**, the bundled Redis), discovery reached through its NodePort Service on 127.0.0.1:30080 (kube-proxy, iptables, the pod). Image cache: ${CACHE_ROOT}/kind.`,
    `- One account (tier pro) made through the admin API with the admin secret the hook Job created; then ${N} tickets for distinct Ed25519 peer ids (\`POST /api/p2p/tickets\` with the API key: key checked against Redis, ticket signed), once per concurrency level (requests in flight from this process over keep-alive connections), after 50 warm-up requests. Latency per request as this process sees it; discovery CPU from its \`process_cpu_seconds_total\` before and after each pass.`,
    '',
    '### Results',
    '',
    ...mdTable(['in flight', 'tickets', 'tickets/s', 'p50 ms', 'p99 ms', 'discovery CPU µs per ticket', 'failed'],
      passes.map((p) => [p.concurrency, p.n, `**${f(p.perSecond, 0)}**`, f(p.p50Ms, 1), f(p.p99Ms, 1), f(p.cpuUsPerTicket, 0), p.errors])),
    '',
    'Reading it: with one discovery replica on this 2-core machine (shared by the three kind nodes, the bench and everything else), the rate at the highest concurrency is the replica\'s; more replicas (`discovery.replicas`, or `discovery.autoscaling`) add to it as long as Redis keeps up. Compare the in-process figure of the auth bench (no Service, no kube-proxy).',
    '',
    ...(errors.length > 0 ? ['### Errors', '', ...errors.map((e) => `- ${e}`), ''] : []),
    '### Machine',
    '',
    ...machineTable(m, { coresNote: 'the kind nodes (control plane, two workers), discovery, Redis and the bench share them', loadavg: load })
  ].join('\n')
  const best = passes.length > 0 ? passes.reduce((a, b) => (b.perSecond > a.perSecond ? b : a)) : undefined
  const parts = best != null ? [`one discovery replica through the chart's NodePort Service: ${f(best.perSecond, 0)} tickets/s at ${best.concurrency} in flight (p99 ${f(best.p99Ms, 1)} ms), ${f(passes[0]!.perSecond, 0)}/s one at a time; ${f(median(passes.map((p) => p.cpuUsPerTicket)), 0)} µs discovery CPU per ticket`] : []
  log(writeSection(process.env.KIND_TICKETS_OUT ?? BENCH_DOC, benchSection({ id: 'kind-tickets', title: 'Ticket issuance through the chart\'s Service (kind)', command: 'npm run bench:kind-tickets', machine: m, parts, body })))
  if (errors.length > 0) process.exitCode = 1
}

await runScript('kind-tickets', { deadlineS: 1800, cleanup: () => {}, log }, main)
