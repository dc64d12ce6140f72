/**
 * spec.limits and spec.rateLimits of a RelayPool: relay settings passed to each relay as flags,
 * or, when `reloadable`, in the pool's limits ConfigMap the relays reload without a restart.
 */
import { intSetting, secretKeyRef, zeroOrRange, type Prop } from './define.js'

export const limits: Prop = {
  type: 'object',
  tsName: 'RelayLimits',
  description: 'Per-relay limits, passed to each relay (config file `limits.*`, env MAX_RESERVATIONS etc.). Unset fields keep the relay\'s defaults.',
  doc: { hide: true },
  properties: {
    maxReservations: intSetting({ description: 'Reservations held at once (relay default 4096).', range: [1, 1_000_000], default: 'relay default 4096', text: '0 would refuse every peer', flag: '--max-reservations', config: 'limits.max_reservations', reloadable: true }),
    reservationTtlSeconds: intSetting({ description: 'Reservation lifetime; clients refresh before it ends (relay default 3600).', range: [30, 86400], default: '3600', flag: '--reservation-ttl', config: 'limits.reservation_ttl_seconds' }),
    maxCircuits: intSetting({ description: 'Circuits relayed at once (relay default 1024).', range: [1, 1_000_000], default: '1024', text: '0 would refuse every circuit', flag: '--max-circuits', config: 'limits.max_circuits', reloadable: true }),
    circuitDataLimitBytes: intSetting({ description: 'Bytes per circuit, both directions together; 0 = unlimited (relay default 4 GiB).', range: zeroOrRange('limits.circuitDataLimitBytes', 65536, 1_099_511_627_776, 'must be 0 (unlimited) or between 65536 (64 KiB) and 1099511627776 (1 TiB)'), default: '4 GiB', flag: '--circuit-data-limit', config: 'limits.circuit_data_limit_bytes', int64: true, reloadable: true }),
    circuitDurationSeconds: intSetting({ description: 'Seconds per circuit; 0 = unlimited (relay default 3600).', range: zeroOrRange('limits.circuitDurationSeconds', 10, 86400, 'must be 0 (unlimited) or between 10 and 86400 seconds'), default: '3600', flag: '--circuit-duration', config: 'limits.circuit_duration_seconds', reloadable: true }),
    maxConnections: intSetting({ description: 'Connections at once; 0 = maxReservations + 2 × maxCircuits + 256 (relay default 0).', range: [0, 10_000_000], default: '0 (= maxReservations + 2 × maxCircuits + 256)', flag: '--max-connections', config: 'limits.max_connections', reloadable: true }),
    maxPendingConnections: intSetting({ description: 'Connections still in their Noise/Yamux handshake at once; when full, the oldest handshake of the busiest address is evicted (relay default 256).', range: [1, 100_000], default: '256', text: 'handshakes at once; 0 would refuse every new connection', flag: '--max-pending-connections', config: 'limits.max_pending_connections' }),
    handshakeTimeoutSeconds: intSetting({ description: 'Seconds a new connection has to finish its handshake (relay default 5).', range: [1, 120], default: '5', flag: '--handshake-timeout', config: 'limits.handshake_timeout_seconds' }),
    ipMaxConnections: intSetting({ description: 'Connections at once from one IP address, on each relay; 0 = unlimited (relay default 64).', range: [0, 1_000_000], default: '64', text: 'per source IP and relay, 0 = unlimited', flag: '--ip-max-connections', config: 'limits.ip_max_connections', reloadable: true }),
    peerMaxCircuits: intSetting({ description: 'Circuits at once from one source peer, on each relay; 0 = unlimited (relay default 16).', range: [0, 1_000_000], default: '16', text: 'circuits at once per source peer and relay, 0 = unlimited', flag: '--peer-max-circuits', config: 'limits.peer_max_circuits', reloadable: true }),
    ipMaxCircuits: intSetting({ description: 'Circuits at once from one source IP address, on each relay; 0 = unlimited (relay default 64).', range: [0, 1_000_000], default: '64', text: 'circuits at once per source IP and relay, 0 = unlimited', flag: '--ip-max-circuits', config: 'limits.ip_max_circuits', reloadable: true }),
    circuitIdleTimeoutSeconds: intSetting({ description: 'Seconds without a byte in either direction after which a circuit is closed; 0 = never (relay default 300).', range: zeroOrRange('limits.circuitIdleTimeoutSeconds', 10, 86400, 'must be 0 (never) or between 10 and 86400 seconds'), default: '300', text: 'a circuit without a byte either way for this long is closed, 0 = never', flag: '--circuit-idle-timeout', config: 'limits.circuit_idle_timeout_seconds', reloadable: true }),
    maxBufferedBytes: intSetting({ description: 'Bytes buffered in all circuits of a relay together; at it the circuits stop reading and new circuits are refused; 0 = unlimited (relay default 256 MiB).', range: zeroOrRange('limits.maxBufferedBytes', 16_777_216, 1_099_511_627_776, 'must be 0 (unlimited) or between 16777216 (16 MiB) and 1099511627776 (1 TiB)'), default: '256 MiB', text: 'bytes buffered in all circuits of a relay; at it circuits stop reading and new circuits are refused, 0 = unlimited', flag: '--max-buffered-bytes', config: 'limits.max_buffered_bytes', int64: true, reloadable: true })
  }
}

export const rateLimits: Prop = {
  type: 'object',
  tsName: 'RelayRateLimits',
  description: 'Rate limits of every relay of the pool (relay config `rate_limits.*`, passed as flags). Unset fields keep the relay\'s defaults. With shared: true the counts are kept in Redis and so hold across the pool\'s relays (and every relay using the same Redis) instead of per relay.',
  doc: { hide: true },
  rules: [{ rule: '!has(self.redisUrlSecretRef) || (has(self.shared) && self.shared)', message: 'rateLimits.redisUrlSecretRef is only used with rateLimits.shared: true' }],
  properties: {
    shared: {
      type: 'boolean',
      description: 'true: the relays count against shared limits in Redis (each relay gets the URL as REDIS_URL from redisUrlSecretRef, default spec.discovery.redisUrlSecretRef); while Redis is unreachable each relay limits alone. Unset or false: each relay limits alone (relay default).',
      doc: { default: '– (each relay limits alone)', text: '`true`: counts kept in Redis, so they hold across all relays on that Redis; the relay gets `REDIS_URL` (its `--redis`) from `rateLimits.redisUrlSecretRef`, else `discovery.redisUrlSecretRef`, through `valueFrom.secretKeyRef` (the URL never appears in the pod spec). While Redis is unreachable each relay limits alone.' }
    },
    redisUrlSecretRef: {
      ...secretKeyRef('Secret key (in the pool\'s namespace) holding the Redis URL for shared rate limits, when it is not the discovery registry\'s (spec.discovery.redisUrlSecretRef). Needs shared: true.', 'redis-url'),
      doc: { type: '`{name, key}` (key default `redis-url`)', text: 'another Redis for the counts; CEL: only with `shared: true`', leaf: true }
    },
    ipConnectionsPerSecond: intSetting({ description: 'New connections per second per source IP, checked before the handshake; 0 = off (relay default 20).', range: [0, 100_000], default: '20', text: '0 = off', flag: '--ip-connections-per-second', config: 'rate_limits.ip_connections_per_second' }),
    peerReservationsPerMinute: intSetting({ description: 'Reservations per minute per peer; 0 = off (relay default 30).', range: [0, 100_000], default: '30', text: '0 = off', flag: '--peer-reservations-per-minute', config: 'rate_limits.peer_reservations_per_minute', reloadable: true }),
    peerCircuitsPerMinute: intSetting({ description: 'Circuits per minute per source peer; 0 = off (relay default 120).', range: [0, 100_000], default: '120', text: '0 = off', flag: '--peer-circuits-per-minute', config: 'rate_limits.peer_circuits_per_minute', reloadable: true })
  }
}
