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

/** Node's native cipher methods (no url in the profile) */
const NATIVE_CRYPTO = new Set(['update', 'final', 'CipherBase', 'setAAD', 'setAuthTag', 'getAuthTag', 'initiv'])
/** the profiler's own start/stop calls (node:inspector), not part of what is measured */
const isProfilerItself = (fn: string, url: string): boolean => url === 'node:inspector' || url.startsWith('node:internal/inspector')

/** What a relay's data path spends its time on: the categories of categoriseProfile, first match wins. */
const CATEGORIES: Categories = [
  ['garbage collector', (fn) => fn === '(garbage collector)'],
  ['ChaCha20-Poly1305: Node crypto (cipher objects, update, final, tag)', (fn, url) => url.startsWith('node:internal/crypto') || url === 'node:crypto' || (url === '' && NATIVE_CRYPTO.has(fn))],
  ['ChaCha20-Poly1305: wasm (upstream\'s small-message path)', (fn, url) => url.includes('as-chacha20poly1305') || url.startsWith('wasm://')],
  ['Noise framing (@chainsafe/libp2p-noise, our noise.ts)', (fn, url) => url.includes('libp2p-noise') || url.includes('/shared/dist/noise.js')],
  ['yamux framing (@chainsafe/libp2p-yamux, frame-size patch)', (fn, url) => url.includes('libp2p-yamux') || url.includes('yamux-frame-size') || url.includes('/shared/dist/yamux.js')],
  ['Uint8ArrayList', (fn, url) => url.includes('uint8arraylist')],
  ['stream plumbing (@libp2p/utils message streams, events)', (fn, url) => url.includes('@libp2p/utils') || url.includes('@libp2p/interface') || url.startsWith('node:internal/event_target') || url.includes('main-event') || url.includes('progress-events')],
  ['socket writes (write/writev syscalls, Writable)', (fn, url) => fn === 'writeBuffer' || fn === 'writev' || fn === 'writeLatin1String' || url.startsWith('node:internal/streams/writable') || url === 'node:net' || (url.startsWith('node:internal/stream_base_commons') && fn !== 'onStreamRead')],
  ['socket reads (onStreamRead, Readable)', (fn, url) => fn === 'onStreamRead' || url.startsWith('node:internal/streams/readable') || url.startsWith('node:internal/streams/')],
  ['libp2p TCP, connection (@libp2p/tcp, libp2p)', (fn, url) => url.includes('@libp2p/tcp') || /node_modules\/libp2p\//.test(url)],
  ['relay (splice, accounting, metrics)', (fn, url) => url.includes('/relay-image/') || url.includes('prom-client') || url.includes('upstream-patches')],
  ['Node core, other (timers, nextTick, Buffer)', (fn, url) => url.startsWith('node:')],
  ['V8 / native, other ((program), runtime)', (fn, url) => url === ''],
  ['other JS', () => true]
]

type Categories = Array<[string, (fn: string, url: string) => boolean]>

const KEY_OBJECTS = new Set(['createPrivateKey', 'createPublicKey', 'getKeyObjectSlots', 'getSlots', 'prepareAsymmetricKey', 'export', 'generateKeyPairSync'])

/** What a relay spends on accepting connections and reservations (Noise XX handshakes, identify, RESERVE): first match wins. */
export const CONNECTION_CATEGORIES: Categories = [
  ['garbage collector', (fn) => fn === '(garbage collector)'],
  ['crypto: key objects (import/export of X25519 and Ed25519 keys, key generation)', (fn, url) => url.startsWith('node:internal/crypto') && KEY_OBJECTS.has(fn)],
  ['crypto: signatures (Ed25519 sign/verify)', (fn, url) => url.startsWith('node:internal/crypto/sig')],
  ['crypto: X25519 diffieHellman', (fn, url) => url.startsWith('node:internal/crypto/diffiehellman')],
  ['crypto: other (AEAD, hashes)', (fn, url) => url.startsWith('node:internal/crypto') || url === 'node:crypto' || url.includes('@noble/hashes') || (url === '' && NATIVE_CRYPTO.has(fn))],
  ['socket writes (write/writev syscalls, Writable)', (fn, url) => fn === 'writeBuffer' || fn === 'writev' || fn === 'writeLatin1String' || url.startsWith('node:internal/streams/writable') || url === 'node:net' || (url.startsWith('node:internal/stream_base_commons') && fn !== 'onStreamRead')],
  ['peer store, protobuf, multiaddr/multiformats (identify results)', (fn, url) => /@libp2p\/peer-store|protons-runtime|@multiformats\/multiaddr|\/multiformats\/|@libp2p\/peer-record|@libp2p\/peer-id/.test(url)],
  ['debug loggers created per connection (weald, isatty)', (fn, url) => url.includes('weald') || url.includes('@libp2p/logger') || fn === 'isatty'],
  ['Noise handshake and framing', (fn, url) => url.includes('libp2p-noise') || url.includes('/shared/dist/noise.js')],
  ['yamux', (fn, url) => url.includes('libp2p-yamux') || url.includes('/shared/dist/yamux.js')],
  ['stream plumbing (@libp2p/utils, events, abort signals)', (fn, url) => /@libp2p\/utils|@libp2p\/interface|main-event|progress-events|race-signal|abort-error|it-[a-z-]+\//.test(url) || url.startsWith('node:internal/event_target') || url.startsWith('node:internal/abort_controller')],
  ['libp2p core (upgrader, connection manager, registrar), TCP, circuit relay', (fn, url) => /node_modules\/libp2p\/|@libp2p\/tcp|@libp2p\/circuit-relay-v2|@libp2p\/identify|@libp2p\/ping|@libp2p\/multistream-select/.test(url)],
  ['relay (hop hooks, limits, metrics, patches)', (fn, url) => url.includes('/relay-image/') || url.includes('prom-client') || url.includes('upstream-patches') || url.includes('/packages/')],
  ['socket reads, timers, other Node core', (fn, url) => url.startsWith('node:')],
  ['V8 / native, other ((program), runtime, microtasks)', (fn, url) => url === ''],
  ['other JS', () => true]
]

/** Self time of a .cpuprofile grouped into categories (the data path's by default), largest first; `pct` of busy time. */
export function categoriseProfile (file: string, table: Categories = CATEGORIES): { busyMs: number, totalMs: number, categories: ProfileRow[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000)
  let totalMs = 0
  let busyMs = 0
  const cat = new Map<string, number>()
  for (const [id, ms] of self) {
    const node = byId.get(id)
    if (node == null) continue
    totalMs += ms
    const { functionName, url } = node.callFrame
    if (functionName === '(idle)' || isProfilerItself(functionName, url)) continue
    busyMs += ms
    const name = table.find(([, match]) => match(functionName, url))![0]
    cat.set(name, (cat.get(name) ?? 0) + ms)
  }
  const categories = [...cat].sort((a, b) => b[1] - a[1]).map(([name, selfMs]) => ({ name, selfMs, pct: (100 * selfMs) / busyMs }))
  return { busyMs, totalMs, categories }
}
