import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { RelayStore } from './types.js'

const PREFIX = 'pos_relay_discovery_'

export type RegistrationResult = 'ok' | 'unauthorized' | 'throttled' | 'invalid' | 'not_listed' | 'conflict' | 'forbidden' | 'unavailable'

/** ok = a ticket issued; otherwise why it was refused (account ids are never labels) */
export type TicketRequestResult = 'ok' | 'unauthorized' | 'tier_unknown' | 'throttled' | 'invalid' | 'unavailable'

export interface DiscoveryMetrics {
  httpRequests: Counter<'route' | 'method' | 'status_code'>
  httpDuration: Histogram<'route' | 'method' | 'status_code'>
  registrations: Counter<'result'>
  ticketRequests: Counter<'result'>
  relaysListed: Gauge
  rankedLookups: Counter<'result'>
}

/**
 * Registers the discovery metrics on `registry`. Labels are bounded on purpose: routes are
 * templates and relay / peer ids never become label values.
 */
export function createMetrics (registry: Registry, store: RelayStore): DiscoveryMetrics {
  collectDefaultMetrics({ register: registry, prefix: PREFIX })
  const registers = [registry]
  // eslint-disable-next-line no-new -- prom-client's gauge registers itself in the registry it is given
  new Gauge({
    name: `${PREFIX}store_up`,
    help: '1 if the relay registry store answered a ping during this scrape, else 0',
    registers,
    async collect () {
      try {
        await store.ping()
        this.set(1)
      } catch {
        this.set(0)
      }
    },
  })
  const registrations = new Counter({
    name: `${PREFIX}registrations_total`,
    help: 'Relay registration attempts (POST /api/p2p/relays) by result',
    labelNames: ['result'],
    registers,
  })
  // Export every result from the start so rate() queries work before the first failure.
  for (const result of ['ok', 'unauthorized', 'throttled', 'invalid', 'not_listed', 'conflict', 'forbidden', 'unavailable'] satisfies RegistrationResult[]) {
    registrations.inc({ result }, 0)
  }
  const ticketRequests = new Counter({
    name: `${PREFIX}ticket_requests_total`,
    help: 'Ticket requests (POST /api/p2p/tickets) by result: ok (issued), or refused because unauthorized (missing, unknown, wrong or disabled API key), tier_unknown (the account\'s tier is not configured), throttled (too many failed attempts from the address), invalid (malformed request), unavailable (Redis); account ids are never labels',
    labelNames: ['result'],
    registers,
  })
  for (const result of ['ok', 'unauthorized', 'tier_unknown', 'throttled', 'invalid', 'unavailable'] satisfies TicketRequestResult[]) {
    ticketRequests.inc({ result }, 0)
  }
  const rankedLookups = new Counter({
    name: `${PREFIX}ranked_cache_lookups_total`,
    help: 'GET /api/p2p/relays?for= answers by whether they came from the ranked-answer cache (hit) or were ranked (miss); hit rate = hit / (hit + miss); peer ids are never labels',
    labelNames: ['result'],
    registers,
  })
  for (const result of ['hit', 'miss']) rankedLookups.inc({ result }, 0)
  return {
    rankedLookups,
    registrations,
    ticketRequests,
    httpRequests: new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests by route template, method and status code',
      labelNames: ['route', 'method', 'status_code'],
      registers,
    }),
    httpDuration: new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'HTTP request duration by route template, method and status code',
      labelNames: ['route', 'method', 'status_code'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    relaysListed: new Gauge({
      name: `${PREFIX}relays_listed`,
      help: 'Number of live relays returned by the last successful list',
      registers,
    }),
  }
}
