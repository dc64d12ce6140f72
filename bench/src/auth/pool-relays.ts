/**
 * AUTH_RELAYS=pool: the auth bench's relays as the operator renders them
 * (issue 11's benchmark), instead of `pos-relay run` with flags of ours.
 * A real kube-apiserver + etcd (e2e/kube/harness.ts, binaries cached in
 * ~/.cache/pos-relay/k8s), the operator (`pos-relay operator`), and one
 * RelayPool per variant: without spec.auth, and with `spec.auth.required`
 * (ticket keys fetched from the bench's discovery, accounts in its Redis,
 * both through the discovery Secret as the chart wires them). Each pool's
 * pod is then run as the kubelet would (operator/test/kube-helpers.ts
 * runRelayContainer: the rendered args, env resolved from the Secrets,
 * mounts written out), with only the listen addresses moved to loopback.
 * No kubelet reports the pods Ready, so the operator never lists them: the
 * peers dial the relays by address, as in the CLI variant.
 */
import { kubelet, runRelayContainer, startOperator, until, type OperatorProc } from '../../../operator/test/kube-helpers.ts'
import { k } from '../../../e2e/kube/test/helpers.ts'
import { CRD_FILE, startControlPlane, type ControlPlane } from '../../../e2e/kube/harness.ts'
import { setNodesPublicAddress } from '../../../e2e/shared/relaypool.ts'
import { freePort, type RedisServer } from '@pos-relay/testing'
import type { CliRelay } from '../lib/cli.ts'
import type { Discovery } from './discovery.ts'

const NAMESPACE = 'bench'
const SECRET = 'pos-relay-discovery'

export interface PoolRelays {
  relays: Map<string, CliRelay>
  stop: () => Promise<void>
}

/** Starts the control plane and operator, one pool per entry of `pools` (name → spec.auth or undefined), and runs each pool's relay. */
export async function startPoolRelays (dir: string, redis: RedisServer, d: Discovery, pools: Record<string, Record<string, unknown> | undefined>, log: (line: string) => void): Promise<PoolRelays> {
  let cp: ControlPlane | undefined
  let operator: OperatorProc | undefined
  const relays = new Map<string, CliRelay>()
  const stop = async (): Promise<void> => {
    await Promise.all([...relays.values()].map(async (r) => { await r.stop() }))
    await operator?.kill('SIGKILL')
    await cp?.stop()
  }
  try {
    cp = await startControlPlane({ crds: [CRD_FILE] })
    log(`kube-apiserver ${cp.server}`)
    await k(cp, ['create', 'namespace', NAMESPACE])
    await k(cp, ['create', 'secret', 'generic', SECRET, '-n', NAMESPACE, `--from-literal=redis-url=${redis.url}`, '--from-literal=p2p-secret=bench-p2p', `--from-literal=api-url=${d.url}`])
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    await k(cp, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1', labels: { 'kubernetes.io/hostname': 'node-1' } } }))
    await k(cp, ['patch', 'node', 'node-1', '--subresource=status', '--type=merge', '-p', JSON.stringify({
      status: { addresses: [{ type: 'InternalIP', address: '10.89.0.2' }], conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'bench node', lastHeartbeatTime: now, lastTransitionTime: now }] }
    })])
    // the API server taints a new Node not-ready until a kubelet says otherwise: there is none here
    await k(cp, ['patch', 'node', 'node-1', '--type=merge', '-p', '{"spec":{"taints":null}}'])
    await setNodesPublicAddress(cp.kubectl, '127.0.0.1')
    operator = await startOperator(cp, ['--relay-image', 'pos-relay:bench'])
    for (const [name, auth] of Object.entries(pools)) {
      const hostPort = await freePort()
      const spec = { replicas: 1, hostPort, discovery: { redisUrlSecretRef: { name: SECRET }, p2pSecretRef: { name: SECRET } }, ...(auth != null ? { auth } : {}) }
      await k(cp, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'pos-relay.io/v1alpha1', kind: 'RelayPool', metadata: { name, namespace: NAMESPACE }, spec }))
      const pod = await until(`pod ${name}-0`, async () => {
        const r = await cp!.kubectl(['get', 'pod', `${name}-0`, '-n', NAMESPACE, '-o', 'json'])
        return r.code === 0 ? JSON.parse(r.stdout) : undefined
      }, 60_000).catch(async (err) => {
        const status = (await cp!.kubectl(['get', 'relaypool', name, '-n', NAMESPACE, '-o', 'jsonpath={.status.conditions}'])).stdout
        throw new Error(`${err.message}; the pool's conditions: ${status}`)
      })
      const proc = await runRelayContainer(cp, pod, dir, { port: hostPort })
      // the kubelet's part: the pod runs (not Ready: nobody probes it here)
      await kubelet(cp, NAMESPACE, pod.metadata.name, false)
      const metricsPort = Number(new URL(proc.started.metrics).port)
      const peerId: string = proc.ready.peer_id
      relays.set(name, {
        name,
        pid: proc.child.pid!,
        addr: `/ip4/127.0.0.1/tcp/${hostPort}/p2p/${peerId}`,
        port: hostPort,
        peerId,
        metricsPort,
        args: pod.spec.containers[0].args,
        flags: [`RelayPool ${name}${auth != null ? ` spec.auth ${JSON.stringify(auth)}` : ' without spec.auth'}: ${pod.spec.containers[0].args.join(' ')}`],
        metrics: async () => await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text(),
        stop: async (graceMs = 5000) => { await proc.kill('SIGTERM', graceMs) },
        stderrTail: () => proc.stderr.slice(-20).join('\n')
      })
    }
    return { relays, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
