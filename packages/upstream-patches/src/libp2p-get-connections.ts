/**
 * Patch: a linear `connectionManager.getConnections()` for libp2p 3.3.11.
 *
 * Bug: the all-peers form builds its list with `conns = conns.concat(peerConns)`
 * once per peer, copying the list so far each time: quadratic in the number
 * of connected peers. It runs for every inbound connection (the
 * maxConnections check) and in the connection pruner, so a relay holding
 * thousands of reservations spent most of a new peer's time there (5,000
 * reservations took 87 s).
 *
 * Patch: on one node, the all-peers form is replaced by a linear copy of
 * `getConnectionsMap()`; per-peer lookups stay upstream's.
 */
import { checkVersion, requireInternal, type UpstreamTarget } from './version.js'
import type { Connection } from '@libp2p/interface'

export const LIBP2P_GET_CONNECTIONS: UpstreamTarget = { patch: 'libp2p-get-connections', package: 'libp2p', versions: ['3.3.11'] }

interface ConnectionManagerInternals {
  getConnections: (peer?: unknown) => Connection[]
  getConnectionsMap: () => Map<unknown, Connection[]>
}

/** The node's connection manager (a private component), checked. */
export function connectionManagerOf (node: unknown): ConnectionManagerInternals {
  const cm = (node as { components?: { connectionManager?: Partial<ConnectionManagerInternals> } }).components?.connectionManager
  requireInternal(LIBP2P_GET_CONNECTIONS, typeof cm?.getConnections === 'function' && typeof cm.getConnectionsMap === 'function', 'components.connectionManager.getConnections/getConnectionsMap missing')
  return cm as ConnectionManagerInternals
}

/** Replaces `getConnections()` (all peers) of this libp2p node by a linear one. */
export function linearGetConnections (node: unknown): void {
  checkVersion(LIBP2P_GET_CONNECTIONS)
  const cm = connectionManagerOf(node)
  const perPeer = cm.getConnections.bind(cm)
  const byPeer = cm.getConnectionsMap.bind(cm)
  cm.getConnections = (peer?: unknown): Connection[] => {
    if (peer != null) return perPeer(peer)
    const all: Connection[] = []
    for (const conns of byPeer().values()) for (const c of conns) all.push(c)
    return all
  }
}
