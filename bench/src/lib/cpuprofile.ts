/** Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by package. */
import { readFileSync } from 'node:fs'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

export interface ProfileRow { name: string, selfMs: number, pct: number }
/** `pct` is of the busy time: everything but (idle), i.e. time the main thread was working. */
export interface ProfileSummary { totalMs: number, idleMs: number, busyMs: number, functions: ProfileRow[], packages: ProfileRow[] }

function where (url: string): string {
  if (url === '') return ''
  const nm = url.lastIndexOf('node_modules/')
  if (nm !== -1) return url.slice(nm + 'node_modules/'.length)
  if (url.startsWith('node:')) return url
  const m = /\/(relay-image|packages\/[^/]+|bench)\/(.*)$/.exec(url)
  return m != null ? `${m[1]}/${m[2]}` : url
}

function packageOf (url: string): string {
  if (url === '') return '(V8 / native: GC, program, runtime)'
  if (url.startsWith('node:')) return 'node core'
  const nm = url.lastIndexOf('node_modules/')
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/')
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  if (url.includes('/relay-image/')) return '@pos-relay/relay'
  const m = /\/packages\/([^/]+)\//.exec(url)
  return m != null ? `@pos-relay/${m[1]}` : url
}

export function summariseProfile (file: string, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000)
  }
  let totalMs = 0
  let idleMs = 0
  const fn = new Map<string, number>()
  const pkg = new Map<string, number>()
  for (const [id, ms] of self) {
    const node = byId.get(id)
    if (node == null) continue
    const { functionName, url, lineNumber } = node.callFrame
    totalMs += ms
    if (functionName === '(idle)') { idleMs += ms; continue }
    const loc = where(url)
    const name = `${functionName || '(anonymous)'}${loc !== '' ? ` ${loc}:${lineNumber + 1}` : ''}`
    fn.set(name, (fn.get(name) ?? 0) + ms)
    const pk = packageOf(url)
    pkg.set(pk, (pkg.get(pk) ?? 0) + ms)
  }
  const busyMs = totalMs - idleMs
  const rows = (m: Map<string, number>): ProfileRow[] => [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, selfMs]) => ({ name, selfMs, pct: (100 * selfMs) / busyMs }))
  return { totalMs, idleMs, busyMs, functions: rows(fn), packages: rows(pkg) }
}
