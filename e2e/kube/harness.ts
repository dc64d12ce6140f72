/**
 * A real Kubernetes control plane for tests, envtest-style (controller-runtime's
 * pkg/internal/testing/controlplane, redone in TypeScript): etcd +
 * kube-apiserver (+ optionally kube-controller-manager for garbage collection,
 * namespace deletion and default ServiceAccounts) on free loopback ports, with
 * certificates made by the `openssl` CLI in a temp folder. No kubelet, no
 * scheduler: pods stay Pending unless a test writes their status.
 *
 * The binaries come from e2e/kube/build-binaries.sh (built from the Go module
 * proxy into ${POS_RELAY_CACHE:-~/.cache/pos-relay}/k8s/<version>/bin).
 *
 *   const cp = await startControlPlane({ controllerManager: true, crds: [CRD_FILE] })
 *   // child processes: spawn(cmd, args, { env: { ...process.env, ...cp.env } })
 *   await cp.kubectl(['get', 'relaypools', '-A'])
 *   await cp.stop()
 *
 * Environment:
 *   POS_RELAY_KUBE_BIN        use the binaries in this folder (skips the build)
 *   POS_RELAY_CACHE           cache root (default ~/.cache/pos-relay)
 *   POS_RELAY_KUBE_VERBOSE=1  copy control-plane logs to stderr
 *   POS_RELAY_KUBE_START_TIMEOUT_MS  per-component start timeout (default 60000)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, killChildrenOnUnhandledSignals, pollUntil, trackChild } from '@pos-relay/testing'
import { ensureKubeBinaries, type KubeBinaries } from './binaries.ts'

export { BUILD_SCRIPT, ensureKubeBinaries, pinnedVersions, type KubeBinaries } from './binaries.ts'

/** The RelayPool CRD (single source of truth). */
export const CRD_FILE = fileURLToPath(new URL('../../crds/relaypools.pos-relay.io.yaml', import.meta.url))
export const CHART_DIR = fileURLToPath(new URL('../../charts/pos-relay', import.meta.url))
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface ExecResult {
  /** exit code (a signal name if killed) */
  code: number | string
  stdout: string
  stderr: string
}

export interface StartControlPlaneOptions {
  /** also run kube-controller-manager (garbage collector: ownerReference cascade; namespace deletion; default ServiceAccounts). Default false. */
  controllerManager?: boolean
  /** kube-controller-manager --controllers; default garbage collector, namespace, serviceaccount, clusterrole aggregation */
  controllers?: string[]
  /** CRD files applied (and waited for Established) right after the API server is ready, before kube-controller-manager starts so its garbage collector knows them at once */
  crds?: string[]
  /** extra kube-apiserver flags */
  apiServerFlags?: string[]
}

export interface ControlPlane {
  /** admin kubeconfig (CN=admin, O=system:masters) */
  kubeconfigPath: string
  /** https://127.0.0.1:<port> */
  server: string
  /** KUBECONFIG (+ HELM_* dirs inside the temp folder) for child processes: spawn(..., { env: { ...process.env, ...cp.env } }) */
  env: Record<string, string>
  binaries: KubeBinaries
  /** temp folder with certs, kubeconfigs, etcd data and the components' logs (removed by stop()) */
  dir: string
  /** PEM files, for clients that do not read kubeconfigs */
  tls: { caFile: string, certFile: string, keyFile: string }
  /** runs kubectl against this control plane; `input` goes to stdin */
  kubectl(args: string[], input?: string): Promise<ExecResult>
  /** runs helm against this control plane (its config/cache dirs live in the temp folder) */
  helm(args: string[]): Promise<ExecResult>
  /** one authenticated API request as admin; body is JSON-encoded unless a string */
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number, body: any, text: string }>
  /** the last lines of a component's log */
  logs(component: 'etcd' | 'kube-apiserver' | 'kube-controller-manager', lines?: number): string
  /** kills every process (SIGTERM, SIGKILL after 5 s) and removes the temp folder; idempotent */
  stop(): Promise<void>
}

const START_TIMEOUT_MS = Number(process.env.POS_RELAY_KUBE_START_TIMEOUT_MS ?? 60_000)
const VERBOSE = process.env.POS_RELAY_KUBE_VERBOSE === '1'

// ------------------------------------------------------------------ processes

interface Proc {
  name: string
  child: ChildProcess
  logFile: string
}

interface Plane {
  procs: Proc[]
  dir: string
}

// the control plane's processes are tracked by @pos-relay/testing: killed (and the plane's folder
// removed) when this process exits or gets an unhandled SIGINT/SIGTERM/SIGHUP

function tail (file: string, lines = 30): string {
  try { return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') } catch { return '(no log)' }
}

function startProc (plane: Plane, name: string, bin: string, args: string[]): Proc {
  const logFile = join(plane.dir, `${name}.log`)
  const fd = openSync(logFile, 'a')
  const child = trackChild(spawn(bin, args, { stdio: ['ignore', VERBOSE ? 'inherit' : fd, VERBOSE ? 'inherit' : fd], cwd: plane.dir }), () => { rmSync(plane.dir, { recursive: true, force: true }) })
  closeSync(fd)
  // a forgotten control plane must not keep the test process alive; the exit guard kills it
  child.unref()
  const proc = { name, child, logFile }
  plane.procs.push(proc)
  return proc
}

async function stopProc (proc: Proc, graceMs = 5000): Promise<void> {
  const { child } = proc
  if (child.exitCode != null || child.signalCode != null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

export async function run (bin: string, args: string[], opts: { env?: Record<string, string>, input?: string, cwd?: string, timeoutMs?: number } = {}): Promise<ExecResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    const timer = opts.timeoutMs != null ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined
    child.on('close', (code, signal) => {
      if (timer != null) clearTimeout(timer)
      resolve({ code: code ?? signal ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(opts.input ?? '')
  })
}

// ------------------------------------------------------------------ certificates (openssl CLI)

async function openssl (dir: string, args: string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: dir })
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
}

/** EC P-256 key + self-signed CA certificate, 7 days. */
async function makeCa (dir: string, name: string, cn: string): Promise<void> {
  await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`])
  await openssl(dir, ['req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-days', '7', '-sha256',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    '-out', `${name}.crt`])
}

/** EC P-256 key + certificate signed by `ca`, 7 days. */
async function makeCert (dir: string, ca: string, name: string, subject: string, ext: string[]): Promise<void> {
  await openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`])
  await openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`])
  writeFileSync(join(dir, `${name}.ext`), ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', ...ext].join('\n') + '\n')
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
    '-days', '7', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`])
}

function kubeconfig (server: string, dir: string, caName: string, user: string, certName: string): string {
  const b64 = (f: string): string => readFileSync(join(dir, f)).toString('base64')
  // JSON is YAML; kubectl, helm and @kubernetes/client-node all read it
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'pos-relay-test', cluster: { server, 'certificate-authority-data': b64(`${caName}.crt`) } }],
    users: [{ name: user, user: { 'client-certificate-data': b64(`${certName}.crt`), 'client-key-data': b64(`${certName}.key`) } }],
    contexts: [{ name: 'pos-relay-test', context: { cluster: 'pos-relay-test', user, namespace: 'default' } }],
    'current-context': 'pos-relay-test',
    preferences: {}
  }, null, 2) + '\n'
}

// ------------------------------------------------------------------ HTTP probes

interface TlsOpts { ca?: Buffer, cert?: Buffer, key?: Buffer, insecure?: boolean }

function fetchUrl (url: string, tls: TlsOpts = {}, method = 'GET', body?: string, contentType = 'application/json'): Promise<{ status: number, text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (body != null) { headers['Content-Type'] = contentType; headers['Content-Length'] = String(Buffer.byteLength(body)) }
    const opts = { method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, headers, timeout: 10_000 }
    const req = u.protocol === 'https:'
      ? httpsRequest({ ...opts, ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.insecure !== true, servername: 'localhost' })
      : httpRequest(opts)
    req.on('response', (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${url}`)))
    req.on('error', reject)
    req.end(body)
  })
}

/** pollUntil `check`, giving up as soon as `proc` exits, with its log in the error */
async function waitUntil (what: string, proc: Proc | undefined, check: () => Promise<boolean>, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  await pollUntil(what, check, {
    timeoutMs,
    intervalMs: 100,
    giveUp: () => proc != null && (proc.child.exitCode != null || proc.child.signalCode != null)
      ? `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) while waiting for ${what}:\n${tail(proc.logFile)}`
      : undefined,
    describe: () => proc != null ? `${proc.name} log:\n${tail(proc.logFile)}` : ''
  })
}

// ------------------------------------------------------------------ control plane

/**
 * Starts etcd + kube-apiserver (+ kube-controller-manager) on free loopback
 * ports. Resolves once /readyz answers ok and the `default` namespace exists
 * (and, with controllerManager, once its /healthz answers ok).
 */
export async function startControlPlane (opts: StartControlPlaneOptions = {}): Promise<ControlPlane> {
  const binaries = await ensureKubeBinaries()
  killChildrenOnUnhandledSignals()
  const dir = mkdtempSync(join(tmpdir(), 'pos-relay-kube-'))
  const plane: Plane = { procs: [], dir }
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    // reverse start order: controller-manager, apiserver, etcd
    for (const p of [...plane.procs].reverse()) await stopProc(p)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    return await boot(binaries, plane, opts, stop)
  } catch (err) {
    await stop()
    throw err
  }
}

async function boot (binaries: KubeBinaries, plane: Plane, opts: StartControlPlaneOptions, stop: () => Promise<void>): Promise<ControlPlane> {
  const { dir } = plane
  const [etcdClient, etcdPeer, apiPort, kcmPort] = await distinctFreePorts(4)
  const server = `https://127.0.0.1:${apiPort}`

  // certificates: a serving CA, a client CA, the apiserver's serving cert, two client certs and the SA signing key
  await makeCa(dir, 'serving-ca', 'pos-relay-test-serving-ca')
  await makeCa(dir, 'client-ca', 'pos-relay-test-client-ca')
  await makeCert(dir, 'serving-ca', 'apiserver', '/CN=kube-apiserver', [
    'extendedKeyUsage=serverAuth',
    'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1'
  ])
  await makeCert(dir, 'client-ca', 'admin', '/O=system:masters/CN=admin', ['extendedKeyUsage=clientAuth'])
  // kube-controller-manager runs every controller under its own identity
  // (--use-service-account-credentials=false), so it needs more than the
  // bootstrap system:kube-controller-manager role: make it a cluster admin.
  await makeCert(dir, 'client-ca', 'kcm', '/O=system:masters/CN=system:kube-controller-manager', ['extendedKeyUsage=clientAuth'])
  await openssl(dir, ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'])
  await openssl(dir, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'])

  const kubeconfigPath = join(dir, 'kubeconfig')
  writeFileSync(kubeconfigPath, kubeconfig(server, dir, 'serving-ca', 'admin', 'admin'), { mode: 0o600 })
  writeFileSync(join(dir, 'kcm.kubeconfig'), kubeconfig(server, dir, 'serving-ca', 'system:kube-controller-manager', 'kcm'), { mode: 0o600 })
  const tlsFiles = { caFile: join(dir, 'serving-ca.crt'), certFile: join(dir, 'admin.crt'), keyFile: join(dir, 'admin.key') }
  const adminTls: TlsOpts = { ca: readFileSync(tlsFiles.caFile), cert: readFileSync(tlsFiles.certFile), key: readFileSync(tlsFiles.keyFile) }

  // etcd
  const etcdUrl = `http://127.0.0.1:${etcdClient}`
  const etcd = startProc(plane, 'etcd', binaries.etcd, [
    '--name=pos-relay-test',
    `--data-dir=${join(dir, 'etcd-data')}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=pos-relay-test=http://127.0.0.1:${etcdPeer}`,
    '--unsafe-no-fsync=true',
    '--quota-backend-bytes=2147483648',
    '--log-level=warn'
  ])
  await waitUntil('etcd /health', etcd, async () => {
    const r = await fetchUrl(`${etcdUrl}/health`)
    return r.status === 200 && JSON.parse(r.text).health === 'true'
  })

  // kube-apiserver
  const apiserver = startProc(plane, 'kube-apiserver', binaries.kubeApiserver, [
    `--etcd-servers=${etcdUrl}`,
    `--cert-dir=${join(dir, 'apiserver-certs')}`,
    `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
    `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
    `--client-ca-file=${join(dir, 'client-ca.crt')}`,
    `--secure-port=${apiPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    '--authorization-mode=RBAC',
    // No kubelet and no token controller: pods need no default ServiceAccount to be admitted (as envtest).
    '--disable-admission-plugins=ServiceAccount',
    `--service-account-issuer=https://127.0.0.1:${apiPort}`,
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    '--v=1',
    ...(opts.apiServerFlags ?? [])
  ])
  await waitUntil('kube-apiserver /readyz', apiserver, async () => (await fetchUrl(`${server}/readyz`, adminTls)).status === 200)
  await waitUntil('the default namespace', apiserver, async () => (await fetchUrl(`${server}/api/v1/namespaces/default`, adminTls)).status === 200)

  const helmHome = join(dir, 'helm')
  const env: Record<string, string> = {
    KUBECONFIG: kubeconfigPath,
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_DATA_HOME: join(helmHome, 'data')
  }

  const request = async (method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number, body: any, text: string }> => {
    const payload = body == null ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
    const r = await fetchUrl(`${server}${path}`, adminTls, method, payload, contentType)
    let parsed: any
    try { parsed = JSON.parse(r.text) } catch { parsed = undefined }
    return { status: r.status, body: parsed, text: r.text }
  }

  const cp: ControlPlane = {
    kubeconfigPath,
    server,
    env,
    binaries,
    dir,
    tls: tlsFiles,
    kubectl: async (args, input) => await run(binaries.kubectl, args, { env, ...(input != null ? { input } : {}), timeoutMs: 120_000 }),
    helm: async (args) => await run(binaries.helm, args, { env, timeoutMs: 300_000 }),
    request,
    logs: (component, lines = 50) => tail(join(dir, `${component}.log`), lines),
    stop
  }

  for (const file of opts.crds ?? []) await applyCrd(cp, file)

  if (opts.controllerManager === true) {
    const controllers = opts.controllers ?? [
      'garbage-collector-controller', 'namespace-controller', 'serviceaccount-controller', 'clusterrole-aggregation-controller'
    ]
    const kcmKubeconfig = join(dir, 'kcm.kubeconfig')
    const kcm = startProc(plane, 'kube-controller-manager', binaries.kubeControllerManager, [
      `--kubeconfig=${kcmKubeconfig}`,
      `--authentication-kubeconfig=${kcmKubeconfig}`,
      `--authorization-kubeconfig=${kcmKubeconfig}`,
      '--leader-elect=false',
      `--controllers=${controllers.join(',')}`,
      `--secure-port=${kcmPort}`,
      '--bind-address=127.0.0.1',
      `--cert-dir=${join(dir, 'kcm-certs')}`,
      '--use-service-account-credentials=false',
      '--profiling=false',
      '--v=1'
    ])
    await waitUntil('kube-controller-manager /healthz', kcm, async () => (await fetchUrl(`https://127.0.0.1:${kcmPort}/healthz`, { insecure: true })).status === 200)
  }
  return cp
}

async function distinctFreePorts (n: number): Promise<number[]> {
  const ports = new Set<number>()
  while (ports.size < n) ports.add(await freePort())
  return [...ports]
}

// ------------------------------------------------------------------ CRDs

/**
 * Applies a CRD file (server-side apply) and waits until every CRD in it is
 * Established and its resources are served by discovery (as envtest does).
 */
export async function applyCrd (cp: ControlPlane, file: string, timeoutMs = 30_000): Promise<string[]> {
  const r = await cp.kubectl(['apply', '--server-side', '--force-conflicts', '-f', file, '-o', 'name'])
  if (r.code !== 0) throw new Error(`kubectl apply -f ${file} failed: ${r.stderr}`)
  const names = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('customresourcedefinition'))
    .map((l) => l.slice(l.indexOf('/') + 1))
  for (const name of names) await waitForCrd(cp, name, timeoutMs)
  return names
}

/** Waits until CRD `name` (e.g. relaypools.pos-relay.io) is Established and served. */
export async function waitForCrd (cp: ControlPlane, name: string, timeoutMs = 30_000): Promise<void> {
  let served: Array<{ group: string, version: string, plural: string }> = []
  await waitUntil(`CRD ${name} Established`, undefined, async () => {
    const r = await cp.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`)
    if (r.status !== 200) return false
    const established = (r.body.status?.conditions ?? []).some((c: any) => c.type === 'Established' && c.status === 'True')
    if (!established) return false
    served = r.body.spec.versions.filter((v: any) => v.served === true)
      .map((v: any) => ({ group: r.body.spec.group, version: v.name, plural: r.body.spec.names.plural }))
    return true
  }, timeoutMs)
  for (const s of served) {
    await waitUntil(`${s.plural}.${s.group}/${s.version} in discovery`, undefined, async () => {
      const r = await cp.request('GET', `/apis/${s.group}/${s.version}`)
      return r.status === 200 && (r.body.resources ?? []).some((res: any) => res.name === s.plural)
    }, timeoutMs)
  }
}
