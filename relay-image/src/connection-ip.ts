import type { Connection } from '@libp2p/interface'

/** the IP address a connection comes from; undefined for a non-IP transport */
export function ipOf (conn: Connection): string | undefined {
  const first = conn.remoteAddr.getComponents()[0]
  return first != null && (first.name === 'ip4' || first.name === 'ip6') ? first.value : undefined
}

/** a connection that is itself relayed (a circuit) */
export function isRelayed (conn: Connection): boolean {
  return conn.remoteAddr.toString().includes('/p2p-circuit')
}
