/**
 * `npm run bench:auth` (or `npx node bench/src/auth.ts` after `npx tsc -b`):
 * what accounts cost the relay, in one run (about 4 minutes), written as
 * the `auth` section of docs/benchmarks.md.
 *
 * Set-up as a user sets it up, everything through the CLI: `pos-relay keys
 * generate`, `pos-relay discovery --redis … --ticket-keys-file …` (with an
 * admin secret), `pos-relay accounts create --tier pro`, and relays from
 * `pos-relay init` + `pos-relay run`. One real Redis (`startRedis()`).
 *
 * 1. Relayed throughput, auth + metering on vs off: the same dialer and
 *    listener (src/peers-process.ts) through
 *    - "auth off": `pos-relay run` with default limits, no Redis;
 *    - "auth + metering on": the same plus `--auth --ticket-keys-url
 *      <discovery>/api/p2p/ticket-keys` and `auth.redis_url` in the config
 *      file (metering, quotas, revocations, fleet-wide reservation counts in
 *      Redis), the rate limits left in memory as on the other relay so that
 *      only auth and metering differ;
 *    - "auth off (control)": a second relay identical to the first, an A/A
 *      comparison that shows how much two identical relays differ in this
 *      run (the noise floor), unless AUTH_CONTROL=0.
 *    Both peers get tickets from discovery with the account's API key (the
 *    client SDK's TicketClient) and present them to the auth relay. Rounds
 *    of one transfer per relay, the order rotating; median MiB/s and relay
 *    CPU seconds per GiB; the cost of auth in % on both, per round (paired)
 *    and overall. Then the metered usage (GET /api/admin/usage, the Redis
 *    quota counter) is checked against the relay's own byte counters and
 *    the payload sent.
 * 2. Tickets: N distinct peers get a ticket each from discovery (issuance
 *    rate, discovery and Redis CPU per ticket), then in this process the
 *    relay's verifier (TicketVerifier with the discovery's JWKS URL, as the
 *    relay builds it) checks them in passes: valid tickets, the same with a
 *    broken signature (rejection path), and verify + the Redis revocation
 *    check (what the relay's TicketGate does per presented ticket, minus
 *    the stream I/O); CPU time from process.cpuUsage() -> verifications per
 *    CPU second, i.e. per core. Also TicketIssuer.issue() in process.
 *
 * Bounded in count and time; every child process (discovery, relays, peers,
 * Redis) is stopped at the end, on error and on Ctrl-C, and exits by itself
 * when this process goes away. Knobs: AUTH_* environment variables, see
 * auth/config.ts. Part 1 is auth/throughput.ts, part 2 auth/tickets.ts, the
 * discovery set-up auth/discovery.ts; the report is auth/report.ts.
 */
import { runWithRedis } from './lib/bench-run.ts'
import { killAllChildren } from './lib/children.ts'
import { killAllRelays } from './lib/cli.ts'
import { loadavg } from './lib/machine.ts'
import { runScript } from './lib/script.ts'
import { config, log } from './auth/config.ts'
import { startDiscovery, type Discovery } from './auth/discovery.ts'
import { authSection, renderAuthReport } from './auth/report.ts'
import type { AuthResults } from './auth/results.ts'
import { measureThroughput } from './auth/throughput.ts'
import { measureTickets } from './auth/tickets.ts'

async function main (): Promise<void> {
  await runWithRedis<AuthResults>({
    name: 'auth',
    log,
    results: (base) => ({ ...base, config, relays: [], verify: [] }),
    render: renderAuthReport,
    section: authSection,
    out: config.out,
    json: config.json,
    body: async ({ dir, redis, attempt }, results) => {
      let discovery: Discovery | undefined
      try {
        discovery = await startDiscovery(dir, redis)
        log(`redis-server ${redis.url} (pid ${redis.pid}); discovery ${discovery.url} (pid ${discovery.server.pid}); account ${discovery.account} (${config.tier})`)
        if (config.parts.has('throughput')) await attempt('throughput', async () => { await measureThroughput(dir, redis, discovery!, results) })
        results.loadavg['after part 1'] = loadavg()
        if (config.parts.has('tickets')) await attempt('tickets', async () => { await measureTickets(redis, discovery!, results) })
      } finally {
        await discovery?.server.stop()
      }
    }
  })
}

await runScript('auth', { deadlineS: config.deadlineS, cleanup: () => { killAllRelays(); killAllChildren() }, log }, main)
