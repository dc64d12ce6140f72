/**
 * The control-plane binaries (etcd, kube-apiserver, kube-controller-manager, kubectl, helm):
 * found in POS_RELAY_KUBE_BIN or the cache, else built by build-binaries.sh (see harness.ts).
 */
import { spawn } from 'node:child_process'
import { accessSync, constants, existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BUILD_SCRIPT = fileURLToPath(new URL('./build-binaries.sh', import.meta.url))

export interface KubeBinaries {
  etcd: string
  kubeApiserver: string
  kubeControllerManager: string
  kubectl: string
  helm: string
  /** the folder holding them */
  dir: string
  /** e.g. v1.34.4 */
  k8sVersion: string
}

function scriptDefault (name: string): string {
  const text = readFileSync(BUILD_SCRIPT, 'utf8')
  const m = new RegExp(`^${name}="\\$\\{${name}:-([^}]+)\\}"`, 'm').exec(text)
  if (m?.[1] == null) throw new Error(`cannot find the default ${name} in ${BUILD_SCRIPT}`)
  return m[1]
}

/** The pinned versions (build-binaries.sh is the source; env vars override as in the script). */
export function pinnedVersions (): { k8s: string, etcd: string, helm: string } {
  return {
    k8s: process.env.K8S_VERSION ?? scriptDefault('K8S_VERSION'),
    etcd: process.env.ETCD_VERSION ?? scriptDefault('ETCD_VERSION'),
    helm: process.env.HELM_VERSION ?? scriptDefault('HELM_VERSION')
  }
}

function isExecutable (p: string): boolean {
  try { accessSync(p, constants.X_OK); return true } catch { return false }
}

function binariesIn (dir: string, k8sVersion: string): KubeBinaries {
  return {
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubectl: join(dir, 'kubectl'),
    helm: join(dir, 'helm'),
    dir,
    k8sVersion
  }
}

function allPresent (b: KubeBinaries): boolean {
  return [b.etcd, b.kubeApiserver, b.kubeControllerManager, b.kubectl, b.helm].every(isExecutable)
}

let ensuring: Promise<KubeBinaries> | undefined

/**
 * Returns the control-plane binaries, building them with build-binaries.sh
 * when the cache lacks them (20–40 min cold on 2 cores; the script's output is
 * streamed to stderr). Cached: a few milliseconds.
 */
export async function ensureKubeBinaries (): Promise<KubeBinaries> {
  ensuring ??= (async () => {
    const v = pinnedVersions()
    const override = process.env.POS_RELAY_KUBE_BIN
    if (override != null && override !== '') {
      const b = binariesIn(override, v.k8s)
      if (!allPresent(b)) throw new Error(`POS_RELAY_KUBE_BIN=${override} lacks one of etcd, kube-apiserver, kube-controller-manager, kubectl, helm`)
      return b
    }
    const cacheRoot = process.env.POS_RELAY_CACHE ?? join(homedir(), '.cache', 'pos-relay')
    const dir = join(cacheRoot, 'k8s', v.k8s, 'bin')
    const b = binariesIn(dir, v.k8s)
    const stamp = join(dir, '.stamp')
    const want = `k8s=${v.k8s} etcd=${v.etcd} helm=${v.helm}`
    if (allPresent(b) && existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return b
    process.stderr.write(`ensureKubeBinaries: building ${want} into ${dir} (first run only; this takes a while)\n`)
    const code = await new Promise<number | string>((resolve) => {
      const child = spawn('bash', [BUILD_SCRIPT], { stdio: ['ignore', process.stderr, process.stderr] })
      child.on('exit', (c, s) => resolve(c ?? s ?? -1))
      child.on('error', () => resolve(-1))
    })
    if (code !== 0) throw new Error(`${BUILD_SCRIPT} failed (${code})`)
    if (!allPresent(b)) throw new Error(`${BUILD_SCRIPT} succeeded but binaries are missing in ${dir}`)
    return b
  })()
  try {
    return await ensuring
  } catch (err) {
    ensuring = undefined
    throw err
  }
}
