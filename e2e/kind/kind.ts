/**
 * The kind suite's machinery: its settings (cluster, image, ports, Helm
 * values), the check of its kind config, the image supply (stock images, or the
 * offline supply of e2e/kind/offline/ when no registry answers), the
 * prerequisite check, and a kind cluster driven through the docker, kind,
 * kubectl and helm executables.
 *
 * Only e2e/kind/kind.test.ts runs a cluster (make e2e-kind). The settings and
 * the config check are pure and also run in the hermetic kube suite, so a
 * broken config or Helm value is caught there too.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { REPO_ROOT, run, type ExecResult } from '../kube/harness.ts'
import type { Kubectl } from '../shared/relaypool.ts'

export const KIND_CONFIG = fileURLToPath(new URL('./kind-config.yaml', import.meta.url))
export const OFFLINE_DIR = fileURLToPath(new URL('./offline/', import.meta.url))
export const CACHE_ROOT = process.env.POS_RELAY_CACHE ?? join(process.env.HOME ?? '/root', '.cache', 'pos-relay')

export const CLUSTER = process.env.POS_RELAY_KIND_CLUSTER ?? 'pos-relay-e2e'
export const IMAGE = process.env.POS_RELAY_KIND_IMAGE ?? 'pos-relay:e2e-kind'
export const RELEASE = 'pos-relay'
export const NAMESPACE = 'pos-relay'
/** the example pool's hostPort, published by the kind config for each worker */
export const RELAY_HOST_PORT = 7373
/** the hostPort of the suite's second pool (tickets required: e2e/kind/auth-pool.ts), published TCP only for each worker */
export const AUTH_HOST_PORT = 7374
/** the discovery Service's nodePort, published by the kind config on 127.0.0.1 */
export const DISCOVERY_NODE_PORT = 30080
export const DISCOVERY_URL = `http://127.0.0.1:${DISCOVERY_NODE_PORT}`
/** the address the hermetic twin's single node announces */
export const PUBLIC_ADDRESS = '127.0.0.1'
/** the loopback address the kind config publishes each worker's hostPort on, in node order */
export const WORKER_ADDRESSES = ['127.0.0.2', '127.0.0.3']

export interface ImageOverrides { redis?: string }

/**
 * Helm values of the kind install: the locally built image (loaded into the
 * nodes, so never pulled), discovery on the NodePort the kind config
 * publishes; offline, the chart's Redis from the locally built image.
 */
export function helmValues (image = IMAGE, overrides: ImageOverrides = {}): Record<string, unknown> {
  const [repository, tag] = splitImage(image)
  const values: Record<string, any> = {
    image: { repository, tag, pullPolicy: 'Never' },
    discovery: { replicas: 1, service: { type: 'NodePort', nodePort: DISCOVERY_NODE_PORT } }
  }
  if (overrides.redis != null) {
    const [r, t] = splitImage(overrides.redis)
    values.redis = { image: { repository: r, tag: t, pullPolicy: 'Never' } }
  }
  return values
}

export function splitImage (image: string): [string, string] {
  const i = image.lastIndexOf(':')
  return i > image.lastIndexOf('/') ? [image.slice(0, i), image.slice(i + 1)] : [image, 'latest']
}

export interface PortMapping { containerPort: number, hostPort: number, listenAddress?: string, protocol?: string }
export interface KindConfig { nodes: Array<{ role: string, extraPortMappings?: PortMapping[] }> }

/**
 * Parses the kind config and checks what the suite relies on (one control
 * plane publishing the discovery NodePort on 127.0.0.1, two workers each
 * publishing TCP and UDP 7373 and TCP 7374 on its own loopback address);
 * throws one error naming every problem.
 */
export function readKindConfig (file = KIND_CONFIG): KindConfig {
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
  const roles = nodes.map((n) => n?.role)
  if (JSON.stringify(roles) !== JSON.stringify(['control-plane', 'worker', 'worker'])) problems.push(`nodes must be one control-plane and two workers, are ${JSON.stringify(roles)}`)
  const maps = (i: number): PortMapping[] => nodes[i]?.extraPortMappings ?? []
  const check = (i: number, port: number, protocol: string, address: string, what: string): void => {
    const m = maps(i).find((x) => x.containerPort === port && (x.protocol ?? 'TCP') === protocol)
    if (m == null) { problems.push(`node ${i} (${String(roles[i])}) lacks a ${protocol} mapping of containerPort ${port} (${what})`); return }
    // relays announce <address>:7373, so the published port must be the same number
    if (m.hostPort !== port) problems.push(`node ${i}: containerPort ${port}/${protocol} must be published on hostPort ${port}, is ${m.hostPort}`)
    if (m.listenAddress !== address) problems.push(`node ${i}: containerPort ${port}/${protocol} must listen on ${address}, is ${String(m.listenAddress)}`)
  }
  check(0, DISCOVERY_NODE_PORT, 'TCP', PUBLIC_ADDRESS, 'the discovery NodePort')
  WORKER_ADDRESSES.forEach((address, w) => {
    for (const protocol of ['TCP', 'UDP']) check(w + 1, RELAY_HOST_PORT, protocol, address, `the relay hostPort, ${protocol === 'UDP' ? 'QUIC' : 'TCP'}`)
    check(w + 1, AUTH_HOST_PORT, 'TCP', address, 'the hostPort of the pool with tickets required')
  })
  if (problems.length > 0) throw new Error(`${file}:\n- ${problems.join('\n- ')}`)
  return cfg
}

// ------------------------------------------------------------------ prerequisites

interface ToolSpec { name: string, env: string, versionArgs: string[], parse: (out: string) => string | undefined, min: string, hint: string }

const TOOLS: ToolSpec[] = [
  // the server version also proves the daemon answers; Debian 12's docker.io (20.10) runs kind fine
  { name: 'docker', env: 'DOCKER', versionArgs: ['version', '--format', '{{.Server.Version}}'], parse: (o) => /^(\d+\.\d+(\.\d+)?)/.exec(o.trim())?.[1], min: '20.10.0', hint: 'install Docker Engine or Docker Desktop and start it (https://docs.docker.com/engine/install/)' },
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
 * Finds docker, kind, kubectl and helm (named by DOCKER, KIND, KUBECTL, HELM,
 * else on PATH) and checks their versions; throws one error listing every
 * missing or too old tool and how to get it.
 */
export async function checkPrerequisites (env: Record<string, string | undefined> = process.env): Promise<Tools> {
  const found: Record<string, string> = {}
  const versions: Record<string, string> = {}
  const problems: string[] = []
  for (const t of TOOLS) {
    const bin = env[t.env] ?? t.name
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

// ------------------------------------------------------------------ image supply

/**
 * `run` for the long steps (image supply, image build, cluster creation): their
 * stderr goes to this process's stderr as it comes, so a CI log shows progress.
 */
export async function runShown (bin: string, args: string[], opts: { env?: Record<string, string>, timeoutMs: number }): Promise<ExecResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: string[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => { process.stderr.write(d); err.push(d.toString('utf8')); if (err.length > 400) err.splice(0, 200) })
    child.on('error', reject)
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? signal ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: err.join('') })
    })
  })
}

async function must (what: string, p: Promise<ExecResult>): Promise<string> {
  const r = await p
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${(r.stderr || r.stdout).trim().split('\n').slice(-40).join('\n')}`)
  return r.stdout
}

/**
 * Makes sure a Docker engine answers: the one already running, else (as root
 * on Debian) one started by e2e/kind/offline/docker.sh with Docker's iptables
 * management off. Sets DOCKER_HOST for everything this process runs.
 */
export async function ensureDocker (): Promise<{ dockerHost: string, started: boolean }> {
  const before = existsSync(join(CACHE_ROOT, 'kind', 'dockerd', 'dockerd.pid'))
  const out = await must('e2e/kind/offline/docker.sh start', run('bash', [join(OFFLINE_DIR, 'docker.sh'), 'start'], { timeoutMs: 600_000 }))
  const dockerHost = /DOCKER_HOST=(\S+)/.exec(out)?.[1]
  if (dockerHost == null) throw new Error(`docker.sh printed no DOCKER_HOST: ${out}`)
  process.env.DOCKER_HOST = dockerHost
  return { dockerHost, started: !before && dockerHost.includes('/.cache/pos-relay/') }
}

export interface Supply {
  offline: boolean
  /** KIND, KUBECTL, HELM and DOCKER to use */
  env: Record<string, string>
  /** the node image (`kind create cluster --image`), unset = kind's default */
  nodeImage?: string
  /** the relay image's base (Dockerfile ARG NODE_IMAGE), unset = its default */
  nodeJsImage?: string
  /** images the chart uses besides the relay image, to `kind load` */
  extraImages: string[]
  overrides: ImageOverrides
}

/** kind v0.30.0's default node image (what `kind create cluster` pulls) */
export const STOCK_NODE_IMAGE = 'kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a'

/**
 * Chooses the image supply: stock images when they can be pulled, else (or
 * with E2E_KIND_OFFLINE=1) the offline supply, built by
 * e2e/kind/offline/images.sh into ~/.cache/pos-relay/kind (reused when cached).
 */
export async function prepareSupply (log: (line: string) => void): Promise<Supply> {
  const docker = process.env.DOCKER ?? 'docker'
  let offline = process.env.E2E_KIND_OFFLINE === '1'
  if (!offline && process.env.E2E_KIND_OFFLINE !== '0') {
    const have = await run(docker, ['image', 'inspect', STOCK_NODE_IMAGE], { timeoutMs: 30_000 })
    if (have.code !== 0) {
      log(`pulling ${STOCK_NODE_IMAGE} (the offline supply is used when this fails)`)
      const pulled = await run(docker, ['pull', STOCK_NODE_IMAGE], { timeoutMs: 600_000 }).catch(() => ({ code: 1, stdout: '', stderr: '' }))
      offline = pulled.code !== 0
    }
  }
  if (!offline) return { offline, env: {}, extraImages: [], overrides: {} }
  log('offline image supply: e2e/kind/offline/images.sh (cached in ~/.cache/pos-relay/kind; ~15-25 min on 2 cores when nothing is cached)')
  await must('e2e/kind/offline/images.sh', runShown('bash', [join(OFFLINE_DIR, 'images.sh')], { timeoutMs: 3_000_000 }))
  const env = Object.fromEntries(readFileSync(join(CACHE_ROOT, 'kind', 'supply.env'), 'utf8').split('\n')
    .map((l) => l.trim()).filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
  return {
    offline,
    env: { KIND: env.KIND!, KUBECTL: env.KUBECTL!, HELM: env.HELM! },
    nodeImage: env.KIND_NODE_IMAGE,
    nodeJsImage: env.POS_RELAY_NODE_BASE_IMAGE,
    extraImages: [env.POS_RELAY_REDIS_IMAGE!],
    overrides: { redis: env.POS_RELAY_REDIS_IMAGE }
  }
}

// ------------------------------------------------------------------ the cluster

export class KindCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'pos-relay-kind-'))
  readonly kubeconfig: string
  private created = false
  readonly tools: Tools
  readonly name: string
  readonly supply: Supply

  constructor (tools: Tools, supply: Supply, name = CLUSTER) {
    this.tools = tools
    this.supply = supply
    this.name = name
    this.kubeconfig = process.env.E2E_KIND_KEEP === '1' ? join(CACHE_ROOT, 'kind', `${name}.kubeconfig`) : join(this.dir, 'kubeconfig')
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

  /** creates the cluster from the kind config (the offline node image, or KIND_NODE_IMAGE, or kind's default) */
  async create (): Promise<void> {
    readKindConfig()
    if (await this.exists()) {
      throw new Error(`a kind cluster named ${this.name} exists already: delete it (make e2e-kind-down, or kind delete cluster --name ${this.name}) or set POS_RELAY_KIND_CLUSTER to another name`)
    }
    this.created = true
    const image = process.env.KIND_NODE_IMAGE ?? this.supply.nodeImage
    await must('kind create cluster', runShown(this.tools.kind, [
      'create', 'cluster', '--name', this.name, '--config', KIND_CONFIG, '--wait', '300s', '--kubeconfig', this.kubeconfig,
      ...(image != null ? ['--image', image] : [])
    ], { timeoutMs: 900_000 }))
    await this.enableForwarding()
  }

  /**
   * A node container's network namespace takes net.ipv4.ip_forward from the host's when it is
   * created. Docker sets it on the host when it manages iptables; ours runs with that off (so the
   * NAT lab's rules are never touched), and on a host with forwarding off a node cannot forward:
   * NodePort traffic from the host to a pod on another node was silently dropped (a run saw the
   * control plane at 0 and the workers at 1, and the discovery NodePort timed out). Each node
   * gets forwarding on, as on any Kubernetes node; the host's own setting is left alone.
   */
  private async enableForwarding (): Promise<void> {
    const nodes = (await must('kind get nodes', run(this.tools.kind, ['get', 'nodes', '--name', this.name], { timeoutMs: 60_000 }))).trim().split('\n').filter((n) => n !== '')
    for (const node of nodes) await must(`ip_forward on ${node}`, run(this.tools.docker, ['exec', node, 'sysctl', '-w', 'net.ipv4.ip_forward=1'], { timeoutMs: 60_000 }))
  }

  /** `make image` (relay-image/build.sh) then `kind load docker-image` of it and the chart's other images */
  async buildAndLoadImages (image = IMAGE): Promise<void> {
    await must('relay-image/build.sh', runShown('bash', [join(REPO_ROOT, 'relay-image', 'build.sh'), image], {
      env: this.supply.nodeJsImage != null ? { NODE_IMAGE: this.supply.nodeJsImage } : {},
      timeoutMs: 1_800_000
    }))
    await this.load([image, ...this.supply.extraImages])
  }

  async load (images: string[]): Promise<void> {
    for (const i of images) await must(`kind load docker-image ${i}`, run(this.tools.kind, ['load', 'docker-image', i, '--name', this.name], { timeoutMs: 600_000 }))
  }

  /** `make chart`: the packaged chart's path */
  async packageChart (): Promise<string> {
    const out = await must('charts/package.sh', run('bash', [join(REPO_ROOT, 'charts', 'package.sh')], { env: { HELM: this.tools.helm }, timeoutMs: 300_000 }))
    return out.trim().split('\n').pop()!
  }

  /** helm install of the packaged chart with `helmValues`, waiting for its workloads */
  async installChart (chart: string, image = IMAGE): Promise<void> {
    const values = join(this.dir, 'values.json')
    writeFileSync(values, JSON.stringify(helmValues(image, this.supply.overrides))) // JSON is YAML
    await this.helm(['install', RELEASE, chart, '--namespace', NAMESPACE, '--create-namespace', '-f', values, '--wait', '--timeout', '5m'])
  }

  /** the workers in the order of the kind config (kind names them <cluster>-worker, <cluster>-worker2) */
  async workers (): Promise<string[]> {
    const out = await must('kubectl get nodes', this.kubectl(['get', 'nodes', '-o', 'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}']))
    return out.split('\n').filter((n) => n.startsWith(`${this.name}-worker`)).sort((a, b) => a.length - b.length || a.localeCompare(b))
  }

  /** what went wrong, for a failed test: nodes, pods, events and the operator's last log lines */
  async diagnostics (): Promise<string> {
    const parts: string[] = []
    for (const args of [['get', 'nodes', '-o', 'wide'], ['get', 'pods', '-A', '-o', 'wide'], ['get', 'relaypools', '-A', '-o', 'wide'], ['get', 'events', '-A', '--sort-by=.lastTimestamp'], ['logs', '-n', NAMESPACE, 'deployment/pos-relay-operator', '--tail=60']]) {
      const r = await this.kubectl(args).catch((err) => ({ code: -1, stdout: '', stderr: String(err) }))
      parts.push(`$ kubectl ${args.join(' ')}\n${r.stdout}${r.stderr}`.split('\n').slice(-80).join('\n'))
    }
    return parts.join('\n')
  }

  /** deletes the cluster this object created (kept with E2E_KIND_KEEP=1) and the temp folder */
  async delete (force = false): Promise<void> {
    const keep = process.env.E2E_KIND_KEEP === '1' && !force
    try {
      if (this.created && !keep) await must('kind delete cluster', run(this.tools.kind, ['delete', 'cluster', '--name', this.name], { timeoutMs: 300_000 }))
    } finally {
      if (!keep) rmSync(this.dir, { recursive: true, force: true })
    }
  }
}

// ------------------------------------------------------------------ rust-libp2p peers

/**
 * The NAT lab's rust-libp2p peer (e2e/interop/rust-peer), built by
 * e2e/interop/build.sh into ~/.cache/pos-relay/interop (cached; CI builds it for
 * the NAT lab first). Undefined when cargo is missing, with the reason.
 */
export async function rustPeerBinary (): Promise<{ bin?: string, why?: string }> {
  const cargo = await run('bash', ['-c', 'PATH="$PATH:$HOME/.cargo/bin" cargo --version'], { timeoutMs: 30_000 }).catch(() => ({ code: 1, stdout: '', stderr: '' }))
  if (cargo.code !== 0) return { why: 'cargo is not installed (the rust-libp2p peer is built from crates.io)' }
  const out = await must('e2e/interop/build.sh rust-peer', runShown('bash', [join(REPO_ROOT, 'e2e', 'interop', 'build.sh'), 'rust-peer'], { timeoutMs: 1_800_000 }))
  return { bin: JSON.parse(out.trim().split('\n').pop()!)['rust-peer'] }
}

/**
 * A rust-libp2p listener reserves on `relayAddr` and a rust-libp2p dialer sends
 * it `bytes` through that relay (no hole punching: both are on this host).
 * Returns the two peers' result lines.
 */
export async function rustRelayedTransfer (bin: string, relayAddr: string, bytes: number): Promise<{ dialer: any, listener: any }> {
  const dir = mkdtempSync(join(tmpdir(), 'pos-relay-rust-'))
  const quic = relayAddr.includes('/quic-v1')
  const common = ['--transport', quic ? 'quic' : 'tcp', '--relay', relayAddr, '--timeout-ms', '45000', '--no-dcutr',
    '--listen', quic ? '/ip4/127.0.0.1/udp/0/quic-v1' : '/ip4/127.0.0.1/tcp/0']
  const ready = join(dir, 'ready.json')
  const result = (out: string): any => out.split('\n').map((l) => { try { return JSON.parse(l) } catch { return undefined } }).find((o) => o?.impl === 'rust')
  const listener = spawn(bin, [...common, '--mode', 'listen', '--ready-file', ready], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lout: Buffer[] = []
  const lerr: string[] = []
  listener.stdout.on('data', (d: Buffer) => lout.push(d))
  listener.stderr.on('data', (d: Buffer) => { lerr.push(d.toString()); if (lerr.length > 50) lerr.shift() })
  const listenerDone = new Promise<void>((resolve) => listener.once('close', () => resolve()))
  try {
    const deadline = Date.now() + 30_000
    let info: any
    while (info == null) {
      try { info = JSON.parse(readFileSync(ready, 'utf8')) } catch {}
      if (info == null && Date.now() > deadline) throw new Error(`rust listener made no reservation on ${relayAddr}: ${lerr.join('').slice(-1500)}`)
      if (info == null) await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const dialer = await run(bin, [...common, '--mode', 'dial', '--peer', info.peer_id, '--payload-bytes', String(bytes)], { timeoutMs: 60_000 })
    await Promise.race([listenerDone, new Promise((resolve) => setTimeout(resolve, 5000))])
    return { dialer: result(dialer.stdout) ?? { ok: false, error: dialer.stderr.slice(-1500) }, listener: result(Buffer.concat(lout).toString()) ?? { ok: false, error: lerr.join('').slice(-1500) } }
  } finally {
    listener.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}
