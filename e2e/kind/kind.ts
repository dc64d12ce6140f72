/**
 * The kind suite's machinery: its settings (cluster, image, ports, Helm
 * values), the check of its kind config, the prerequisite check, and a kind
 * cluster driven through the docker, kind, kubectl and helm executables.
 *
 * Only e2e/kind/kind.test.ts runs a cluster (make e2e-kind, for machines with
 * Docker and internet access). The settings and the config check are pure and
 * also run in the hermetic kube suite, so a broken config or Helm value is
 * caught where the kind suite cannot run.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { CHART_DIR, REPO_ROOT, run, type ExecResult } from '../kube/harness.ts'
import type { Kubectl } from '../shared/relaypool.ts'

export const KIND_CONFIG = fileURLToPath(new URL('./kind-config.yaml', import.meta.url))
export const DOCKERFILE = join(REPO_ROOT, 'relay-image', 'Dockerfile')

export const CLUSTER = process.env.POS_RELAY_KIND_CLUSTER ?? 'pos-relay-e2e'
export const IMAGE = process.env.POS_RELAY_KIND_IMAGE ?? 'pos-relay:e2e-kind'
export const RELEASE = 'pos-relay'
export const NAMESPACE = 'pos-relay'
/** the example pool's hostPort, published by the kind config on 127.0.0.1 */
export const RELAY_HOST_PORT = 7373
/** the discovery Service's nodePort, published by the kind config on 127.0.0.1 */
export const DISCOVERY_NODE_PORT = 30080
export const DISCOVERY_URL = `http://127.0.0.1:${DISCOVERY_NODE_PORT}`
/** the node address relays announce: where the kind config publishes the hostPort */
export const PUBLIC_ADDRESS = '127.0.0.1'

/**
 * Helm values of the kind install: the locally built image (loaded into the
 * node, so never pulled), discovery on a NodePort the kind config publishes,
 * one discovery replica on a one-node cluster.
 */
export function helmValues (image = IMAGE): Record<string, unknown> {
  const i = image.lastIndexOf(':')
  const [repository, tag] = i > image.lastIndexOf('/') ? [image.slice(0, i), image.slice(i + 1)] : [image, 'latest']
  return {
    image: { repository, tag, pullPolicy: 'Never' },
    discovery: { replicas: 1, service: { type: 'NodePort', nodePort: DISCOVERY_NODE_PORT } }
  }
}

export interface PortMapping { containerPort: number, hostPort: number, listenAddress?: string, protocol?: string }

/**
 * Parses the kind config and checks what the suite relies on; throws one
 * error naming every problem.
 */
export function readKindConfig (file = KIND_CONFIG): { nodes: Array<{ role: string, extraPortMappings?: PortMapping[] }> } {
  let cfg: any
  try {
    cfg = parse(readFileSync(file, 'utf8'))
  } catch (err: any) {
    throw new Error(`${file}: not valid YAML: ${err.message}`)
  }
  const problems: string[] = []
  if (cfg?.kind !== 'Cluster') problems.push(`kind must be Cluster, is ${JSON.stringify(cfg?.kind)}`)
  if (cfg?.apiVersion !== 'kind.x-k8s.io/v1alpha4') problems.push(`apiVersion must be kind.x-k8s.io/v1alpha4, is ${JSON.stringify(cfg?.apiVersion)}`)
  const nodes: any[] = Array.isArray(cfg?.nodes) ? cfg.nodes : []
  // one node: kind untaints a lone control-plane node, so the relay can run there,
  // and the hostPort mapping below reaches the only node a relay can be on
  if (nodes.length !== 1 || nodes[0]?.role !== 'control-plane') problems.push('nodes must be exactly one control-plane node')
  const maps: PortMapping[] = nodes[0]?.extraPortMappings ?? []
  for (const [containerPort, what] of [[RELAY_HOST_PORT, 'the relay hostPort'], [DISCOVERY_NODE_PORT, 'the discovery NodePort']] as const) {
    const m = maps.find((x) => x.containerPort === containerPort)
    if (m == null) { problems.push(`extraPortMappings lacks containerPort ${containerPort} (${what})`); continue }
    // the relay announces 127.0.0.1:7373, so the published port must be the same number
    if (m.hostPort !== containerPort) problems.push(`containerPort ${containerPort} must be published on hostPort ${containerPort}, is ${m.hostPort}`)
    if (m.listenAddress !== PUBLIC_ADDRESS) problems.push(`containerPort ${containerPort} must listen on ${PUBLIC_ADDRESS}, is ${String(m.listenAddress)}`)
    if ((m.protocol ?? 'TCP') !== 'TCP') problems.push(`containerPort ${containerPort} must be TCP`)
  }
  if (problems.length > 0) throw new Error(`${file}:\n- ${problems.join('\n- ')}`)
  return cfg
}

// ------------------------------------------------------------------ prerequisites

interface ToolSpec { name: string, env: string, versionArgs: string[], parse: (out: string) => string | undefined, min: string, hint: string }

const TOOLS: ToolSpec[] = [
  // the server version also proves the daemon answers
  { name: 'docker', env: 'DOCKER', versionArgs: ['version', '--format', '{{.Server.Version}}'], parse: (o) => /^(\d+\.\d+(\.\d+)?)/.exec(o.trim())?.[1], min: '24.0.0', hint: 'install Docker Engine or Docker Desktop and start it (https://docs.docker.com/engine/install/)' },
  { name: 'kind', env: 'KIND', versionArgs: ['version'], parse: (o) => /v(\d+\.\d+\.\d+)/.exec(o)?.[1], min: '0.30.0', hint: 'install kind v0.30.0 or newer, whose default node image is Kubernetes 1.34 (go install sigs.k8s.io/kind@v0.30.0, or a release binary: https://kind.sigs.k8s.io/docs/user/quick-start/#installation)' },
  { name: 'kubectl', env: 'KUBECTL', versionArgs: ['version', '--client', '-o', 'json'], parse: (o) => /"gitVersion":\s*"v(\d+\.\d+\.\d+)/.exec(o)?.[1], min: '1.33.0', hint: 'install kubectl 1.33 to 1.35, within one minor version of the cluster\'s 1.34 (https://kubernetes.io/docs/tasks/tools/)' },
  { name: 'helm', env: 'HELM', versionArgs: ['version', '--short'], parse: (o) => /v(\d+\.\d+\.\d+)/.exec(o)?.[1], min: '3.14.0', hint: 'install Helm 3.14 or newer (https://helm.sh/docs/intro/install/)' }
]

function older (a: string, b: string): boolean {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0)
  return false
}

export interface Tools { docker: string, kind: string, kubectl: string, helm: string, versions: Record<string, string> }

/**
 * Finds docker, kind, kubectl and helm (on PATH, or named by DOCKER, KIND,
 * KUBECTL, HELM) and checks their versions; throws one error listing every
 * missing or too old tool and how to get it.
 */
export async function checkPrerequisites (): Promise<Tools> {
  const found: Record<string, string> = {}
  const versions: Record<string, string> = {}
  const problems: string[] = []
  for (const t of TOOLS) {
    const bin = process.env[t.env] ?? t.name
    let r: ExecResult
    try {
      r = await run(bin, t.versionArgs, { timeoutMs: 30_000 })
    } catch (err: any) {
      problems.push(`${t.name}: not found (${bin}: ${err.code ?? err.message}); ${t.hint}, or set ${t.env}=/path/to/${t.name}`)
      continue
    }
    const v = t.parse(r.stdout)
    if (r.code !== 0 || v == null) {
      problems.push(`${t.name}: \`${bin} ${t.versionArgs.join(' ')}\` failed (${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}${t.name === 'docker' ? '; is the Docker daemon running, and may this user use it?' : ''}`)
      continue
    }
    if (older(v, t.min)) problems.push(`${t.name}: ${bin} is version ${v}, older than ${t.min}; ${t.hint}, or set ${t.env}=/path/to/${t.name}`)
    found[t.name] = bin
    versions[t.name] = v
  }
  if (problems.length > 0) {
    throw new Error(`the kind suite needs Docker, kind, kubectl and helm (see e2e/kind/README.md):\n- ${problems.join('\n- ')}`)
  }
  return { docker: found.docker!, kind: found.kind!, kubectl: found.kubectl!, helm: found.helm!, versions }
}

// ------------------------------------------------------------------ the cluster

async function must (what: string, p: Promise<ExecResult>): Promise<string> {
  const r = await p
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${(r.stderr || r.stdout).trim().split('\n').slice(-40).join('\n')}`)
  return r.stdout
}

export class KindCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'pos-relay-kind-'))
  readonly kubeconfig = join(this.dir, 'kubeconfig')
  private created = false
  readonly tools: Tools
  readonly name: string

  constructor (tools: Tools, name = CLUSTER) {
    this.tools = tools
    this.name = name
  }

  /** `kubectl` against this cluster */
  readonly kubectl: Kubectl = async (args, input) => await run(this.tools.kubectl, ['--kubeconfig', this.kubeconfig, ...args], { input, timeoutMs: 300_000 })

  async helm (args: string[]): Promise<string> {
    return await must(`helm ${args.join(' ')}`, run(this.tools.helm, [...args, '--kubeconfig', this.kubeconfig], {
      env: { HELM_CONFIG_HOME: join(this.dir, 'helm-config'), HELM_CACHE_HOME: join(this.dir, 'helm-cache'), HELM_DATA_HOME: join(this.dir, 'helm-data') },
      timeoutMs: 600_000
    }))
  }

  async exists (): Promise<boolean> {
    const out = await must('kind get clusters', run(this.tools.kind, ['get', 'clusters'], { timeoutMs: 60_000 }))
    return out.split('\n').map((s) => s.trim()).includes(this.name)
  }

  /** creates the cluster from the kind config (KIND_NODE_IMAGE picks another node image) and writes its kubeconfig */
  async create (): Promise<void> {
    readKindConfig()
    if (await this.exists()) {
      throw new Error(`a kind cluster named ${this.name} exists already: delete it (kind delete cluster --name ${this.name}) or set POS_RELAY_KIND_CLUSTER to another name`)
    }
    this.created = true
    await must('kind create cluster', run(this.tools.kind, [
      'create', 'cluster', '--name', this.name, '--config', KIND_CONFIG, '--wait', '180s', '--kubeconfig', this.kubeconfig,
      ...(process.env.KIND_NODE_IMAGE != null ? ['--image', process.env.KIND_NODE_IMAGE] : [])
    ], { timeoutMs: 600_000 }))
  }

  /** docker build of relay-image/Dockerfile with the repository as context, then `kind load docker-image` */
  async buildAndLoadImage (image = IMAGE): Promise<void> {
    await must(`docker build -f relay-image/Dockerfile -t ${image} .`, run(this.tools.docker, ['build', '-f', DOCKERFILE, '-t', image, REPO_ROOT], { timeoutMs: 1_800_000 }))
    await must(`kind load docker-image ${image}`, run(this.tools.kind, ['load', 'docker-image', image, '--name', this.name], { timeoutMs: 600_000 }))
  }

  /** helm install of charts/pos-relay with `helmValues(image)`, waiting for its Deployments */
  async installChart (image = IMAGE): Promise<void> {
    const values = join(this.dir, 'values.json')
    writeFileSync(values, JSON.stringify(helmValues(image))) // JSON is YAML
    await this.helm(['install', RELEASE, CHART_DIR, '--namespace', NAMESPACE, '--create-namespace', '-f', values, '--wait', '--timeout', '5m'])
  }

  /** what went wrong, for a failed test: pods, events and the operator's last log lines */
  async diagnostics (): Promise<string> {
    const parts: string[] = []
    for (const args of [['get', 'pods', '-A', '-o', 'wide'], ['get', 'relaypools', '-A', '-o', 'wide'], ['get', 'events', '-n', NAMESPACE, '--sort-by=.lastTimestamp'], ['logs', '-n', NAMESPACE, 'deployment/pos-relay-operator', '--tail=40']]) {
      const r = await this.kubectl(args).catch((err) => ({ code: -1, stdout: '', stderr: String(err) }))
      parts.push(`$ kubectl ${args.join(' ')}\n${r.stdout}${r.stderr}`)
    }
    return parts.join('\n')
  }

  /** deletes the cluster this object created (kept with POS_RELAY_KIND_KEEP=1) and the temp folder */
  async delete (): Promise<void> {
    try {
      if (this.created && process.env.POS_RELAY_KIND_KEEP !== '1') await must('kind delete cluster', run(this.tools.kind, ['delete', 'cluster', '--name', this.name], { timeoutMs: 300_000 }))
    } finally {
      if (process.env.POS_RELAY_KIND_KEEP !== '1') rmSync(this.dir, { recursive: true, force: true })
    }
  }
}
