import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * The relay's Prometheus metrics. Labels are small closed sets (direction,
 * result, reason): never peer ids or account ids, so cardinality is bounded.
 */
/** Live values the gauges read at scrape time; set by the parts that own them. */
export interface GaugeSources {
  connections: () => number
  reservations: () => number
  circuits: () => number
  bufferedBytes: () => number
  registered: () => boolean
  rateLimitRedisUp: () => boolean
  /** auth on and no ticket key known yet (every ticket would be refused) */
  ticketKeysMissing: () => boolean
  /** usage batches the meter could not write yet (auth on) */
  meteringPendingBatches: () => number
}

export class RelayMetrics {
  readonly registry: Registry
  readonly sources: GaugeSources = { connections: () => 0, reservations: () => 0, circuits: () => 0, bufferedBytes: () => 0, registered: () => false, rateLimitRedisUp: () => false, ticketKeysMissing: () => false, meteringPendingBatches: () => 0 }
  readonly connectionsActive: Gauge
  readonly connectionsTotal: Counter<'direction'>
  readonly reservationsActive: Gauge
  readonly reservationsTotal: Counter<'result'>
  readonly circuitsActive: Gauge
  readonly bufferedBytes: Gauge
  readonly circuitsTotal: Counter<'result'>
  readonly circuitEndsTotal: Counter<'reason'>
  readonly relayedBytesTotal: Counter<'direction'>
  readonly denialsTotal: Counter<'reason'>
  readonly registrationAttemptsTotal: Counter<'result'>
  readonly registrationFailuresTotal: Counter
  readonly registered: Gauge
  readonly draining: Gauge
  readonly rateLimitRedisUp: Gauge
  readonly rateLimitFallbackTotal: Counter
  readonly ticketsTotal: Counter<'result'>
  readonly meteredBytesTotal: Counter<'direction'>
  readonly revocationsTotal: Counter<'kind' | 'result'>
  readonly ticketKeysMissing: Gauge
  readonly meteringPendingBatches: Gauge
  readonly limitsReloadsTotal: Counter<'result'>

  constructor (registry = new Registry()) {
    this.registry = registry
    collectDefaultMetrics({ register: registry })
    const r = [registry]
    const sources = this.sources
    this.connectionsActive = new Gauge({ name: 'pos_relay_connections_active', help: 'Open libp2p connections on this relay', registers: r, collect () { this.set(sources.connections()) } })
    this.connectionsTotal = new Counter({ name: 'pos_relay_connections_total', help: 'libp2p connections opened, by direction', labelNames: ['direction'], registers: r })
    this.reservationsActive = new Gauge({ name: 'pos_relay_reservations_active', help: 'Circuit Relay v2 reservations currently held', registers: r, collect () { this.set(sources.reservations()) } })
    this.reservationsTotal = new Counter({ name: 'pos_relay_reservations_total', help: 'Reservation requests answered, by result (ok, refreshed, refused, denied)', labelNames: ['result'], registers: r })
    this.circuitsActive = new Gauge({ name: 'pos_relay_circuits_active', help: 'Relayed circuits currently open', registers: r, collect () { this.set(sources.circuits()) } })
    this.bufferedBytes = new Gauge({ name: 'pos_relay_circuit_buffered_bytes', help: 'Bytes held in circuits\' stream buffers, all circuits together, and in their sockets\' queues beyond 16 KiB each (bounded by limits.max_buffered_bytes)', registers: r, collect () { this.set(sources.bufferedBytes()) } })
    this.circuitsTotal = new Counter({ name: 'pos_relay_circuits_total', help: 'Circuit (CONNECT) requests, by result (opened, denied, failed)', labelNames: ['result'], registers: r })
    this.circuitEndsTotal = new Counter({ name: 'pos_relay_circuit_ends_total', help: 'Circuits closed, by reason (closed, data_limit, duration_limit, idle_timeout, quota, error, shutdown)', labelNames: ['reason'], registers: r })
    this.relayedBytesTotal = new Counter({ name: 'pos_relay_relayed_bytes_total', help: 'Bytes relayed through circuits, by direction (to_destination, to_source)', labelNames: ['direction'], registers: r })
    this.denialsTotal = new Counter({ name: 'pos_relay_denials_total', help: 'Requests refused by this relay, by reason', labelNames: ['reason'], registers: r })
    this.registrationAttemptsTotal = new Counter({ name: 'pos_relay_registration_attempts_total', help: 'Registrations/heartbeats sent to the discovery API, by result', labelNames: ['result'], registers: r })
    this.registrationFailuresTotal = new Counter({ name: 'pos_relay_registration_failures_total', help: 'Failed registrations/heartbeats to the discovery API', registers: r })
    this.registered = new Gauge({ name: 'pos_relay_registered', help: '1 while the last registration with the discovery API succeeded and has not expired', registers: r, collect () { this.set(sources.registered() ? 1 : 0) } })
    this.rateLimitRedisUp = new Gauge({ name: 'pos_relay_rate_limit_redis_up', help: '1 while rate limits are shared through Redis (0: limited by this relay alone, or no Redis configured)', registers: r, collect () { this.set(sources.rateLimitRedisUp() ? 1 : 0) } })
    this.rateLimitFallbackTotal = new Counter({ name: 'pos_relay_rate_limit_fallback_total', help: 'Rate-limit checks answered by the local fallback because Redis was unreachable', registers: r })
    this.ticketsTotal = new Counter({ name: 'pos_relay_tickets_total', help: 'Account tickets presented, by result (ok or the rejection reason)', labelNames: ['result'], registers: r })
    // the account side, in totals only: per-account figures are billing data (Redis), not labels
    this.meteredBytesTotal = new Counter({ name: 'pos_relay_metered_bytes_total', help: 'Relayed bytes metered to accounts (auth on), by direction; per-account usage is in Redis (pos-relay usage), never in labels', labelNames: ['direction'], registers: r })
    this.revocationsTotal = new Counter({ name: 'pos_relay_revocations_total', help: 'Revocations delivered to this relay, by kind (account, ticket) and result (applied: a holder here lost its reservation and circuits; not_held: nobody here held it)', labelNames: ['kind', 'result'], registers: r })
    for (const direction of ['to_destination', 'to_source']) this.meteredBytesTotal.inc({ direction }, 0)
    // exported from the start: rate() sees no first refusal at capacity on a series that starts at 1 (PosRelayReservationsRefusedAtCapacity)
    this.denialsTotal.inc({ reason: 'reservation_limit' }, 0)
    for (const kind of ['account', 'ticket']) for (const result of ['applied', 'not_held']) this.revocationsTotal.inc({ kind, result }, 0)
    // for alerts: a relay without ticket keys is not Ready, one with a metering backlog loses no usage yet but bills late
    this.ticketKeysMissing = new Gauge({ name: 'pos_relay_ticket_keys_missing', help: '1 while auth is on and no ticket key is known (the ticket keys URL unreachable or empty): every ticket is refused and the relay is not Ready', registers: r, collect () { this.set(sources.ticketKeysMissing() ? 1 : 0) } })
    this.meteringPendingBatches = new Gauge({ name: 'pos_relay_metering_pending_batches', help: 'Usage batches waiting to be written to the accounts Redis (auth on); grows while writes fail, one batch per metering interval', registers: r, collect () { this.set(sources.meteringPendingBatches()) } })
    this.limitsReloadsTotal = new Counter({ name: 'pos_relay_limits_reloads_total', help: 'Reads of the limits file (--limits-file) that changed it, by result (applied: new limits in effect; invalid: refused, the previous limits stay)', labelNames: ['result'], registers: r })
    for (const result of ['applied', 'invalid']) this.limitsReloadsTotal.inc({ result }, 0)
    this.draining = new Gauge({ name: 'pos_relay_draining', help: '1 while the relay is draining (SIGTERM received)', registers: r })
  }
}
