/**
 * The kind suite's first check: the cluster network. A pod on one worker
 * reaches a pod IP, a ClusterIP Service and its DNS name backed by a pod on
 * the other worker, before anything of pos-relay is relied on.
 */
import assert from 'node:assert/strict'
import { poll, type Kubectl } from '../shared/relaypool.ts'
import { IMAGE } from './kind.ts'

async function k (kubectl: Kubectl, args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input)
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}`)
  return r.stdout
}

/** a server pod on workers[1], a client pod on workers[0]; the namespace is deleted (not awaited) when it passed */
export async function checkClusterNetwork (kubectl: Kubectl, workers: string[]): Promise<void> {
  const ns = 'pos-relay-netcheck'
  await k(kubectl, ['create', 'namespace', ns])
  const pod = (name: string, node: string, script: string, labels: Record<string, string> = {}): string => JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels },
    spec: {
      nodeName: node,
      restartPolicy: 'Never',
      containers: [{ name, image: IMAGE, imagePullPolicy: 'Never', command: ['node', '--input-type=module', '-e', script] }]
    }
  })
  await k(kubectl, ['apply', '-f', '-'], pod('server', workers[1]!,
    "import { createServer } from 'node:http'; createServer((q, s) => s.end('pong from ' + process.env.HOSTNAME)).listen(8080)", { app: 'server' }))
  await k(kubectl, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'server', namespace: ns }, spec: { selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080 }] } }))
  await k(kubectl, ['wait', '-n', ns, '--for=condition=Ready', 'pod/server', '--timeout=120s'])
  const serverIp = (await k(kubectl, ['get', 'pod', 'server', '-n', ns, '-o', 'jsonpath={.status.podIP}'])).trim()
  const serviceIp = (await k(kubectl, ['get', 'service', 'server', '-n', ns, '-o', 'jsonpath={.spec.clusterIP}'])).trim()
  // Each URL is retried for up to 90 s: right after the cluster comes up, kindnet may not yet
  // have routed the other worker's pod CIDR, nor kube-proxy programmed the Service, nor CoreDNS
  // answered (a CI run failed here once). A network that never converges still fails, with
  // every attempt's error in the pod's log.
  await k(kubectl, ['apply', '-f', '-'], pod('client', workers[0]!, `
    for (const url of ['http://${serverIp}:8080', 'http://${serviceIp}', 'http://server.${ns}.svc.cluster.local']) {
      const deadline = Date.now() + 90000
      for (let attempt = 1; ; attempt++) {
        try {
          const body = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text()
          console.log(url + ' ' + body + ' (attempt ' + attempt + ')')
          break
        } catch (err) {
          console.error(url + ' attempt ' + attempt + ': ' + (err.cause?.code ?? err.cause?.message ?? err.message))
          if (Date.now() > deadline) throw err
          await new Promise((resolve) => setTimeout(resolve, 2000))
        }
      }
    }`))
  const phase = await poll('the client pod to finish', async () => {
    const p = (await k(kubectl, ['get', 'pod', 'client', '-n', ns, '-o', 'jsonpath={.status.phase}'])).trim()
    return p === 'Succeeded' || p === 'Failed' ? p : undefined
  }, 400_000)
  const logs = await k(kubectl, ['logs', 'client', '-n', ns])
  assert.equal(phase, 'Succeeded', logs)
  for (const what of [`${serverIp}:8080`, serviceIp, 'server.']) assert.match(logs, new RegExp(`${what.replace(/\./g, '\\.')}\\S* pong from server`), logs)
  await k(kubectl, ['delete', 'namespace', ns, '--wait=false'])
}
