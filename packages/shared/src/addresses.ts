import { BlockList, isIPv4 } from 'node:net'
import { multiaddr, type Component, type Multiaddr } from '@multiformats/multiaddr'

/**
 * The address policy for relay entries: what discovery accepts from a relay and what
 * the client SDK is willing to dial from a relay list. One copy, used by both, so a
 * hostile entry that slipped into a list (another discovery, an old server) is still
 * dropped by the client.
 */

/** At most this many addrs per relay entry (a TCP and a QUIC address per IP family, several times over). */
export const MAX_RELAY_ADDRS = 16

export interface AddressPolicy {
  /** refuse loopback and private ranges too (public fleets); default false: local mode, kind and private networks need them */
  publicOnly?: boolean
}

type Range = [string, number, 'ipv4' | 'ipv6']

function blockList (ranges: Range[]): BlockList {
  const list = new BlockList()
  for (const [net, prefix, family] of ranges) list.addSubnet(net, prefix, family)
  return list
}

/** Never dialable as a relay, whatever the policy: nobody can be reached there, or it is a cloud metadata endpoint. */
const NEVER: [string, BlockList][] = [
  ['an unspecified address', blockList([['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6']])],
  // includes 169.254.169.254, the cloud metadata endpoint
  ['a link-local address', blockList([['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']])],
  ['a multicast address', blockList([['224.0.0.0', 4, 'ipv4'], ['ff00::', 8, 'ipv6']])],
  ['the broadcast address', blockList([['255.255.255.255', 32, 'ipv4']])]
]

/** Fine on a private network (local mode, kind), not on a public fleet. */
const LOCAL: [string, BlockList][] = [
  ['a loopback address', blockList([['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']])],
  ['a private address', blockList([
    ['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'],
    ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT
    ['fc00::', 7, 'ipv6'] // unique local
  ])]
]

const HOSTS = new Set(['ip4', 'ip6', 'dns', 'dns4', 'dns6', 'dnsaddr'])

/** The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), so the mapping cannot smuggle one past the IPv4 rules. */
function unmapped (ip6: string): string | undefined {
  const m = /^::ffff:(.+)$/i.exec(ip6)
  if (m == null) return undefined
  const tail = m[1] ?? ''
  if (isIPv4(tail)) return tail
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(tail)
  if (hex == null) return undefined
  const n = (parseInt(hex[1] ?? '0', 16) << 16) | parseInt(hex[2] ?? '0', 16)
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

function ipProblem (ip: string, family: 'ipv4' | 'ipv6', policy: AddressPolicy): string | undefined {
  const v4 = family === 'ipv6' ? unmapped(ip) : ip
  const [addr, fam] = v4 != null ? [v4, 'ipv4' as const] : [ip, family]
  for (const [what, list] of NEVER) if (list.check(addr, fam)) return `${ip} is ${what}, which is never a relay address`
  if (policy.publicOnly !== true) return undefined
  for (const [what, list] of LOCAL) if (list.check(addr, fam)) return `${ip} is ${what}, refused by the public-addresses-only policy`
  return undefined
}

function hostProblem (host: Component, policy: AddressPolicy): string | undefined {
  if (!HOSTS.has(host.name)) return `must start with /ip4, /ip6, /dns, /dns4, /dns6 or /dnsaddr, not /${host.name}`
  const value = host.value ?? ''
  if (host.name === 'ip4') return ipProblem(value, 'ipv4', policy)
  if (host.name === 'ip6') return ipProblem(value, 'ipv6', policy)
  const name = value.toLowerCase().replace(/\.$/, '')
  if (policy.publicOnly === true && (name === 'localhost' || name.endsWith('.localhost'))) {
    return `${value} is a loopback name, refused by the public-addresses-only policy`
  }
  return undefined
}

function transportProblem (components: Component[]): string | undefined {
  for (const [i, c] of components.entries()) {
    if ((c.name === 'tcp' || c.name === 'udp') && c.value === '0') return 'has port 0, which cannot be dialed'
    // plain UDP, QUIC draft-29, WebRTC: nothing our relays speak, and raw UDP is a reflection vector
    if (c.name === 'udp' && components[i + 1]?.name !== 'quic-v1') return 'uses UDP other than /quic-v1'
  }
  return undefined
}

/**
 * Why `addr` must not be listed or dialed as a relay address under `policy`, or undefined when it
 * is acceptable. Only the host and transport are judged (a /p2p suffix is the caller's business).
 */
export function relayAddressProblem (addr: string | Multiaddr, policy: AddressPolicy = {}): string | undefined {
  let components: Component[]
  try {
    components = (typeof addr === 'string' ? multiaddr(addr) : addr).getComponents()
  } catch (err) {
    return `is not a valid multiaddr (${(err as Error).message})`
  }
  const host = components[0]
  if (host == null) return 'is empty'
  return hostProblem(host, policy) ?? transportProblem(components)
}

/** The addrs of a relay entry that pass the policy, at most MAX_RELAY_ADDRS of them. */
export function dialableRelayAddrs<T extends string | Multiaddr> (addrs: readonly T[], policy: AddressPolicy = {}): T[] {
  return addrs.filter((a) => relayAddressProblem(a, policy) === undefined).slice(0, MAX_RELAY_ADDRS)
}
