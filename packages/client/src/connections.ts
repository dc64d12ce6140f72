import type { Connection } from '@libp2p/interface'

/** True while a connection runs through a relay (before or without a DCUtR upgrade). */
export function isRelayed (conn: Connection): boolean {
  return conn.remoteAddr.toString().includes('/p2p-circuit')
}
