/**
 * Patch: renewing a relay reservation on the circuit transport's existing
 * listener, for @libp2p/circuit-relay-v2 4.2.13 (client side).
 *
 * Bug (libp2p/js-libp2p#3601): the transport never re-establishes a
 * reservation after the connection to its relay drops, and after one failed
 * dial it keeps the relay in its `relayFilter` for good, so the listener's
 * `/p2p-circuit` address is gone until the process restarts.
 *
 * Patch: no monkey-patching; access to two private parts so the SDK's
 * RelayManager can do the renewal itself: libp2p's `components.transportManager`
 * (to listen on a relay the first time) and the circuit transport's
 * `reservationStore` (to drop the relay from the filter and add it again as
 * 'configured', which makes the existing listener re-announce).
 */
import { checkVersion, requireInternal, type UpstreamTarget } from './version.js'
import type { PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const CIRCUIT_RELAY_TRANSPORT: UpstreamTarget = { patch: 'circuit-relay-transport', package: '@libp2p/circuit-relay-v2', versions: ['4.2.13'] }

export interface TransportManagerInternals {
  listen: (addrs: Multiaddr[]) => Promise<void>
  getTransports: () => unknown[]
}

export interface TransportReservationStore {
  addRelay: (peer: PeerId, type: 'configured') => Promise<unknown>
  relayFilter?: { remove: (item: Uint8Array) => boolean }
}

/** The private parts of a libp2p node and its circuit transport that renewing a reservation needs. */
export interface CircuitTransportInternals {
  transportManager: () => TransportManagerInternals
  reservationStore: () => TransportReservationStore
  /**
   * Makes the transport reserve on `relay` again: drops it from the filter of
   * failed relays, runs `connect` (dialing the relay), adds it as configured.
   */
  renewReservation: (relay: PeerId, connect: () => Promise<unknown>) => Promise<void>
}

/** Checks the installed version now; the internals are checked each time they are used (the node may not be started yet). */
export function circuitTransportInternals (node: unknown): CircuitTransportInternals {
  checkVersion(CIRCUIT_RELAY_TRANSPORT)
  const transportManager = (): TransportManagerInternals => {
    const tm = (node as { components?: { transportManager?: Partial<TransportManagerInternals> } }).components?.transportManager
    requireInternal(CIRCUIT_RELAY_TRANSPORT, typeof tm?.listen === 'function' && typeof tm.getTransports === 'function', 'libp2p components.transportManager.listen/getTransports missing')
    return tm as TransportManagerInternals
  }
  const reservationStore = (): TransportReservationStore => {
    const transport = transportManager().getTransports()
      .find((t: any) => t?.[Symbol.toStringTag] === '@libp2p/circuit-relay-v2-transport') as { reservationStore?: Partial<TransportReservationStore> } | undefined
    const store = transport?.reservationStore
    requireInternal(CIRCUIT_RELAY_TRANSPORT, typeof store?.addRelay === 'function', 'transport.reservationStore.addRelay missing (is circuitRelayTransport() configured?)')
    return store as TransportReservationStore
  }
  return {
    transportManager,
    reservationStore,
    async renewReservation (relay, connect) {
      const store = reservationStore()
      store.relayFilter?.remove(relay.toMultihash().bytes)
      await connect()
      await store.addRelay(relay, 'configured')
    }
  }
}
