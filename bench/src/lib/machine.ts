/** What the numbers were measured on: machine, OS, Node and library versions. */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { commitOf } from '@pos-relay/testing'

const root = new URL('../../../', import.meta.url)

export const VERSIONED_PACKAGES = [
  'libp2p',
  '@libp2p/circuit-relay-v2',
  '@libp2p/tcp',
  '@chainsafe/libp2p-noise',
  '@chainsafe/libp2p-yamux',
  '@libp2p/identify',
  '@libp2p/utils',
  'fastify',
  'ioredis'
]

export interface MachineInfo {
  cpu: string
  cores: number
  memGiB: number
  os: string
  kernel: string
  node: string
  redis: string
  packages: Record<string, string>
  date: string
  /** the commit measured, taken when the run starts (`git describe --always --dirty`) */
  commit: string
}

export function packageVersion (name: string): string {
  try {
    return JSON.parse(readFileSync(new URL(`node_modules/${name}/package.json`, root), 'utf8')).version
  } catch {
    return 'not installed'
  }
}

function osName (): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))
    if (m != null) return m[1]!
  } catch {}
  return `${os.type()} ${os.arch()}`
}

function redisVersion (): string {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8' })
    return /v=(\S+)/.exec(out)?.[1] ?? out.trim()
  } catch {
    return 'not found'
  }
}

export function machineInfo (): MachineInfo {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memGiB: os.totalmem() / 1024 ** 3,
    os: osName(),
    kernel: os.release(),
    node: process.version,
    redis: redisVersion(),
    packages: Object.fromEntries(VERSIONED_PACKAGES.map((p) => [p, packageVersion(p)])),
    date: new Date().toISOString(),
    // the document the benches write is not the code measured (commitOf leaves it out)
    commit: commitOf(fileURLToPath(new URL('docs/benchmarks.md', root)))
  }
}

export type LoadAvg = [number, number, number]

/** os.loadavg() rounded to two decimals: how busy the (shared) machine was */
export function loadavg (): LoadAvg {
  return os.loadavg().map((x) => Math.round(x * 100) / 100) as LoadAvg
}
