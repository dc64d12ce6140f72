/**
 * NAT lab topology: Linux network namespaces, veth pairs, a bridge and
 * iptables, built and torn down by the test harness (needs root).
 *
 *                    "internet" 10.213.0.0/24 (bridge br0 in pnat-inet)
 *        ┌───────────────────────┬────────────────────────┬──────────────────────┐
 *   pnat-relay 10.213.0.10   pnat-rtrA w0 10.213.0.2    pnat-rtrB w0 10.213.0.3
 *   (pos-relay, discovery)   NAT │ l0 10.213.1.1        NAT │ l0 10.213.2.1
 *                                │                          │
 *                        pnat-lanA 10.213.1.10      pnat-lanB 10.213.2.10
 *                        (dialer)                   (listener)
 *
 * Nothing here can reach the outside: no namespace has a default route to the
 * root namespace or any link to it; the routers have only their two connected
 * subnets, the LAN hosts a default route via their router, the relay only its
 * subnet. Every address used is one of these namespaces'.
 *
 * NAT behaviours (router rules):
 * - `eim`: endpoint-independent mapping. MASQUERADE keeps the source port
 *   when it is free (port-preserving), so a peer's mapping towards the relay is
 *   the one it uses towards the other peer: TCP hole punching works.
 * - `symmetric`: `MASQUERADE --random-fully`: every new connection gets a
 *   random source port, so the address the relay observed is useless to the
 *   other peer: hole punching cannot work.
 * Both filter like ordinary home routers: inbound packets without a conntrack
 * entry are dropped silently (FORWARD and INPUT), so an early SYN of a TCP
 * simultaneous open is not answered with a RST.
 */
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * Namespace name prefix. NAT_PREFIX lets two labs run side by side on one
 * machine (e.g. two work trees): each removes only leftovers of its own
 * prefix, and all names and addresses live inside its own namespaces.
 */
export const PREFIX = natPrefix(process.env.NAT_PREFIX)

function natPrefix (value: string | undefined): string {
  if (value == null || value === '') return 'pnat-'
  // `ip netns` names become files under /run/netns: keep them short and plain
  if (!/^[a-z][a-z0-9]{0,9}-$/.test(value)) throw new Error(`NAT_PREFIX must be 1-10 lowercase letters or digits (starting with a letter) and a trailing "-", e.g. "pq-"; got "${value}"`)
  return value
}
export type NatBehaviour = 'eim' | 'symmetric'

export const NS = {
  inet: `${PREFIX}inet`,
  relay: `${PREFIX}relay`,
  rtrA: `${PREFIX}rtrA`,
  rtrB: `${PREFIX}rtrB`,
  lanA: `${PREFIX}lanA`,
  lanB: `${PREFIX}lanB`
} as const

/** the "internet" (a private test range; see e2e/nat/README.md for why go gets --public-cidr) */
export const INTERNET_CIDR = '10.213.0.0/24'
export const ADDR = {
  relay: '10.213.0.10',
  rtrA: '10.213.0.2',
  rtrB: '10.213.0.3',
  rtrALan: '10.213.1.1',
  rtrBLan: '10.213.2.1',
  hostA: '10.213.1.10',
  hostB: '10.213.2.10'
} as const

async function sh (cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { timeout: 15_000 })
    return stdout
  } catch (err: any) {
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.toString().trim() ?? err.message}`)
  }
}

const ip = async (...args: string[]): Promise<string> => await sh('ip', args)
const nsExec = async (ns: string, ...args: string[]): Promise<string> => await sh('ip', ['netns', 'exec', ns, ...args])

/** Namespaces left by a previous (crashed) run: their processes are killed and they are deleted. Synchronous so it can run from exit/signal handlers. */
export function cleanupSync (): void {
  let list = ''
  try { list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }) } catch { return }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? ''
    if (!name.startsWith(PREFIX)) continue
    try {
      const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean)
      for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL') } catch {} }
    } catch {}
    try { execFileSync('ip', ['netns', 'del', name]) } catch {}
  }
}

export interface Topology {
  nat: NatBehaviour
  /** iptables counters etc., for debugging */
  describe: () => Promise<string>
  teardown: () => Promise<void>
}

let installedHandlers = false
function installHandlers (): void {
  if (installedHandlers) return
  installedHandlers = true
  process.on('exit', cleanupSync)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => { cleanupSync(); process.exit(130) })
  }
}

async function veth (a: string, nsA: string, b: string, nsB: string): Promise<void> {
  await ip('link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB)
}

async function up (ns: string, dev: string, cidr?: string): Promise<void> {
  if (cidr != null) await nsExec(ns, 'ip', 'addr', 'add', cidr, 'dev', dev)
  await nsExec(ns, 'ip', 'link', 'set', dev, 'up')
}

async function router (ns: string, lanCidr: string, nat: NatBehaviour): Promise<void> {
  await nsExec(ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
  const ipt = async (...args: string[]): Promise<string> => await nsExec(ns, 'iptables', '-w', ...args)
  await ipt('-t', 'nat', '-A', 'POSTROUTING', '-s', lanCidr, '-o', 'w0', '-j', 'MASQUERADE', ...(nat === 'symmetric' ? ['--random-fully'] : []))
  await ipt('-A', 'FORWARD', '-i', 'l0', '-o', 'w0', '-j', 'ACCEPT')
  await ipt('-A', 'FORWARD', '-i', 'w0', '-o', 'l0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT')
  await ipt('-P', 'FORWARD', 'DROP')
  await ipt('-A', 'INPUT', '-i', 'w0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT')
  await ipt('-A', 'INPUT', '-i', 'w0', '-j', 'DROP')
}

/** Builds the whole topology (after removing leftovers of a previous run). */
export async function buildTopology (nat: NatBehaviour): Promise<Topology> {
  if (process.getuid?.() !== 0) throw new Error('the NAT lab needs root (network namespaces, iptables)')
  installHandlers()
  cleanupSync()
  try {
    for (const ns of Object.values(NS)) {
      await ip('netns', 'add', ns)
      await nsExec(ns, 'ip', 'link', 'set', 'lo', 'up')
    }
    await nsExec(NS.inet, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
    await up(NS.inet, 'br0')
    // internet side
    await veth('w0', NS.relay, 'relay', NS.inet)
    await veth('w0', NS.rtrA, 'rtrA', NS.inet)
    await veth('w0', NS.rtrB, 'rtrB', NS.inet)
    for (const port of ['relay', 'rtrA', 'rtrB']) {
      await nsExec(NS.inet, 'ip', 'link', 'set', port, 'master', 'br0')
      await up(NS.inet, port)
    }
    await up(NS.relay, 'w0', `${ADDR.relay}/24`)
    await up(NS.rtrA, 'w0', `${ADDR.rtrA}/24`)
    await up(NS.rtrB, 'w0', `${ADDR.rtrB}/24`)
    // LANs
    await veth('l0', NS.rtrA, 'e0', NS.lanA)
    await veth('l0', NS.rtrB, 'e0', NS.lanB)
    await up(NS.rtrA, 'l0', `${ADDR.rtrALan}/24`)
    await up(NS.rtrB, 'l0', `${ADDR.rtrBLan}/24`)
    await up(NS.lanA, 'e0', `${ADDR.hostA}/24`)
    await up(NS.lanB, 'e0', `${ADDR.hostB}/24`)
    await nsExec(NS.lanA, 'ip', 'route', 'add', 'default', 'via', ADDR.rtrALan)
    await nsExec(NS.lanB, 'ip', 'route', 'add', 'default', 'via', ADDR.rtrBLan)
    await router(NS.rtrA, '10.213.1.0/24', nat)
    await router(NS.rtrB, '10.213.2.0/24', nat)
  } catch (err) {
    cleanupSync()
    throw err
  }
  return {
    nat,
    async describe () {
      const out: string[] = []
      for (const ns of [NS.rtrA, NS.rtrB]) {
        out.push(`# ${ns}`, await nsExec(ns, 'iptables', '-w', '-t', 'nat', '-L', '-v', '-n'), await nsExec(ns, 'iptables', '-w', '-L', '-v', '-n'))
      }
      return out.join('\n')
    },
    async teardown () { cleanupSync() }
  }
}

/** Runs a command inside a namespace and returns its stdout. */
export { nsExec }
