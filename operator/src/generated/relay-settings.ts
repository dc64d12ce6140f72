// Generated from operator/src/schema/relaypool.ts by `npm run generate:crd`: do not edit.
// Each RelayPool spec field that reaches the relays, with the `pos-relay run` flag it is
// passed as and the relay config key that flag sets. The operator renders the flags from
// this table (manifests.ts relayArgs); operator/test/crd-limits.test.ts checks it against
// the relay's config schema and the CLI's options.
import type { RelayPoolSpec } from './relaypool.js'

export interface RelaySetting {
  /** path in the spec, dotted */
  field: string
  /** flag of `pos-relay run` */
  flag: string
  /** relay config key the flag sets */
  config: string
  /** smallest value the CRD accepts besides 0 when zeroToo */
  minimum: number
  maximum: number
  /** 0 is accepted too (a documented "off" or "unlimited") */
  zeroToo: boolean
  /** applied by running relays: written into the pool's limits ConfigMap, not passed as a flag (a change restarts no relay) */
  reloadable: boolean
  /** the CRD default (the API server fills it in) */
  default?: number
  description: string
  value: (spec: RelayPoolSpec) => number | undefined
}

export const RELAY_SETTINGS: readonly RelaySetting[] = [
  {
    field: 'limits.maxReservations',
    flag: '--max-reservations',
    config: 'limits.max_reservations',
    minimum: 1,
    maximum: 1000000,
    zeroToo: false,
    reloadable: true,
    description: "Reservations held at once (relay default 4096).",
    value: (spec) => spec.limits?.maxReservations
  },
  {
    field: 'limits.reservationTtlSeconds',
    flag: '--reservation-ttl',
    config: 'limits.reservation_ttl_seconds',
    minimum: 30,
    maximum: 86400,
    zeroToo: false,
    reloadable: false,
    description: "Reservation lifetime; clients refresh before it ends (relay default 3600).",
    value: (spec) => spec.limits?.reservationTtlSeconds
  },
  {
    field: 'limits.maxCircuits',
    flag: '--max-circuits',
    config: 'limits.max_circuits',
    minimum: 1,
    maximum: 1000000,
    zeroToo: false,
    reloadable: true,
    description: "Circuits relayed at once (relay default 1024).",
    value: (spec) => spec.limits?.maxCircuits
  },
  {
    field: 'limits.circuitDataLimitBytes',
    flag: '--circuit-data-limit',
    config: 'limits.circuit_data_limit_bytes',
    minimum: 65536,
    maximum: 1099511627776,
    zeroToo: true,
    reloadable: true,
    description: "Bytes per circuit, both directions together; 0 = unlimited (relay default 4 GiB).",
    value: (spec) => spec.limits?.circuitDataLimitBytes
  },
  {
    field: 'limits.circuitDurationSeconds',
    flag: '--circuit-duration',
    config: 'limits.circuit_duration_seconds',
    minimum: 10,
    maximum: 86400,
    zeroToo: true,
    reloadable: true,
    description: "Seconds per circuit; 0 = unlimited (relay default 3600).",
    value: (spec) => spec.limits?.circuitDurationSeconds
  },
  {
    field: 'limits.maxConnections',
    flag: '--max-connections',
    config: 'limits.max_connections',
    minimum: 0,
    maximum: 10000000,
    zeroToo: false,
    reloadable: true,
    description: "Connections at once; 0 = maxReservations + 2 × maxCircuits + 256 (relay default 0).",
    value: (spec) => spec.limits?.maxConnections
  },
  {
    field: 'limits.maxPendingConnections',
    flag: '--max-pending-connections',
    config: 'limits.max_pending_connections',
    minimum: 1,
    maximum: 100000,
    zeroToo: false,
    reloadable: false,
    description: "Connections still in their Noise/Yamux handshake at once; when full, the oldest handshake of the busiest address is evicted (relay default 256).",
    value: (spec) => spec.limits?.maxPendingConnections
  },
  {
    field: 'limits.handshakeTimeoutSeconds',
    flag: '--handshake-timeout',
    config: 'limits.handshake_timeout_seconds',
    minimum: 1,
    maximum: 120,
    zeroToo: false,
    reloadable: false,
    description: "Seconds a new connection has to finish its handshake (relay default 5).",
    value: (spec) => spec.limits?.handshakeTimeoutSeconds
  },
  {
    field: 'limits.ipMaxConnections',
    flag: '--ip-max-connections',
    config: 'limits.ip_max_connections',
    minimum: 0,
    maximum: 1000000,
    zeroToo: false,
    reloadable: true,
    description: "Connections at once from one IP address, on each relay; 0 = unlimited (relay default 64).",
    value: (spec) => spec.limits?.ipMaxConnections
  },
  {
    field: 'limits.peerMaxCircuits',
    flag: '--peer-max-circuits',
    config: 'limits.peer_max_circuits',
    minimum: 0,
    maximum: 1000000,
    zeroToo: false,
    reloadable: true,
    description: "Circuits at once from one source peer, on each relay; 0 = unlimited (relay default 16).",
    value: (spec) => spec.limits?.peerMaxCircuits
  },
  {
    field: 'limits.ipMaxCircuits',
    flag: '--ip-max-circuits',
    config: 'limits.ip_max_circuits',
    minimum: 0,
    maximum: 1000000,
    zeroToo: false,
    reloadable: true,
    description: "Circuits at once from one source IP address, on each relay; 0 = unlimited (relay default 64).",
    value: (spec) => spec.limits?.ipMaxCircuits
  },
  {
    field: 'limits.circuitIdleTimeoutSeconds',
    flag: '--circuit-idle-timeout',
    config: 'limits.circuit_idle_timeout_seconds',
    minimum: 10,
    maximum: 86400,
    zeroToo: true,
    reloadable: true,
    description: "Seconds without a byte in either direction after which a circuit is closed; 0 = never (relay default 300).",
    value: (spec) => spec.limits?.circuitIdleTimeoutSeconds
  },
  {
    field: 'limits.maxBufferedBytes',
    flag: '--max-buffered-bytes',
    config: 'limits.max_buffered_bytes',
    minimum: 16777216,
    maximum: 1099511627776,
    zeroToo: true,
    reloadable: true,
    description: "Bytes buffered in all circuits of a relay together; at it the circuits stop reading and new circuits are refused; 0 = unlimited (relay default 256 MiB).",
    value: (spec) => spec.limits?.maxBufferedBytes
  },
  {
    field: 'rateLimits.ipConnectionsPerSecond',
    flag: '--ip-connections-per-second',
    config: 'rate_limits.ip_connections_per_second',
    minimum: 0,
    maximum: 100000,
    zeroToo: false,
    reloadable: false,
    description: "New connections per second per source IP, checked before the handshake; 0 = off (relay default 20).",
    value: (spec) => spec.rateLimits?.ipConnectionsPerSecond
  },
  {
    field: 'rateLimits.peerReservationsPerMinute',
    flag: '--peer-reservations-per-minute',
    config: 'rate_limits.peer_reservations_per_minute',
    minimum: 0,
    maximum: 100000,
    zeroToo: false,
    reloadable: true,
    description: "Reservations per minute per peer; 0 = off (relay default 30).",
    value: (spec) => spec.rateLimits?.peerReservationsPerMinute
  },
  {
    field: 'rateLimits.peerCircuitsPerMinute',
    flag: '--peer-circuits-per-minute',
    config: 'rate_limits.peer_circuits_per_minute',
    minimum: 0,
    maximum: 100000,
    zeroToo: false,
    reloadable: true,
    description: "Circuits per minute per source peer; 0 = off (relay default 120).",
    value: (spec) => spec.rateLimits?.peerCircuitsPerMinute
  },
  {
    field: 'auth.accountCircuitsPerMinute',
    flag: '--account-circuits-per-minute',
    config: 'rate_limits.account_circuits_per_minute',
    minimum: 0,
    maximum: 1000000,
    zeroToo: false,
    reloadable: true,
    description: "Circuits per minute per account, across the fleet when the relays share Redis; 0 = off (relay default 0).",
    value: (spec) => spec.auth?.accountCircuitsPerMinute
  },
  {
    field: 'auth.meteringIntervalSeconds',
    flag: '--metering-interval',
    config: 'auth.metering_interval_seconds',
    minimum: 1,
    maximum: 300,
    zeroToo: false,
    reloadable: false,
    description: "Seconds between usage flushes to Redis; a crashed relay loses at most this much metering (relay default 5).",
    value: (spec) => spec.auth?.meteringIntervalSeconds
  },
  {
    field: 'drainSeconds',
    flag: '--drain-seconds',
    config: 'drain_seconds',
    minimum: 0,
    maximum: 3600,
    zeroToo: false,
    reloadable: false,
    default: 30,
    description: "After a relay pod is told to stop, how long open circuits may keep running (the relay's drain_seconds). The pod's terminationGracePeriodSeconds is drainSeconds plus a margin.",
    value: (spec) => spec.drainSeconds
  }
]
