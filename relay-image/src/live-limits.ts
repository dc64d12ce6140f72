/**
 * Limits that change without a restart: a JSON file (`limits_file`,
 * `pos-relay run --limits-file`) the relay reads at start and polls, in the
 * config file's own shape, `{"limits": {...}, "rate_limits": {...}}`, and
 * checked by the same zod schemas as the config file and the flags. A RelayPool's
 * relays get it from a ConfigMap the kubelet refreshes in place (within about a
 * minute), so a limit change reaches running relays without a new pod.
 *
 * Only limits the relay enforces itself at each decision are here: circuit
 * and reservation admission, the per-IP connection cap in the gater, the
 * circuit data/duration/idle limits given to each new circuit, the buffer
 * budget, the relay-wide connection cap (libp2p's connection manager has
 * setMaxConnections) and the per-peer/per-account rate limits. The rest is
 * handed to libp2p once, at start (reservation TTL, handshake timeout and
 * the pending-handshake cap, the per-IP connection rate, which also sets
 * libp2p's inbound threshold), or is not a limit (Redis URLs): those need a
 * restart, and a file that sets one is refused as a whole.
 */
import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import type { Logger } from '@pos-relay/shared'
import { formatIssues, limitsSchema, rateLimitsSchema, type RelayLimits, type RelayRateLimits } from './config.js'
import type { RelayMetrics } from './metrics.js'

/** `limits.*` fields applied to a running relay (new circuits and reservations see the new value; open ones keep theirs) */
export const RELOADABLE_LIMITS = [
  'max_reservations', 'max_circuits', 'peer_max_circuits', 'ip_max_circuits', 'circuit_data_limit_bytes',
  'circuit_duration_seconds', 'circuit_idle_timeout_seconds', 'max_connections', 'ip_max_connections', 'max_buffered_bytes'
] as const satisfies ReadonlyArray<keyof RelayLimits>

/** `rate_limits.*` fields applied to a running relay */
export const RELOADABLE_RATE_LIMITS = [
  'peer_reservations_per_minute', 'peer_circuits_per_minute', 'account_circuits_per_minute'
] as const satisfies ReadonlyArray<keyof RelayRateLimits>

/** the fields of `schema` named in `keys`, each optional and without its default (absent: the value the relay started with) */
function optionalFields<S extends z.ZodObject, K extends keyof S['shape'] & string> (schema: S, keys: readonly K[]): z.ZodObject<{ [k in K]: z.ZodOptional<z.ZodNumber> }, z.core.$strict> {
  const shape = Object.fromEntries(keys.map((k) => {
    const field = schema.shape[k] as unknown as z.ZodDefault<z.ZodNumber>
    return [k, field.unwrap().optional()]
  }))
  return z.object(shape).strict() as any
}

/**
 * The limits file: the reloadable fields of the config's own `limits` and
 * `rate_limits` schemas (same ranges), each optional; a field that needs a
 * restart, or a typo, is an error rather than silently ignored.
 */
export const limitsFileSchema = z.object({
  limits: optionalFields(limitsSchema, RELOADABLE_LIMITS).default({}),
  rate_limits: optionalFields(rateLimitsSchema, RELOADABLE_RATE_LIMITS).default({})
}).strict()

export type LiveLimits = Pick<RelayLimits, typeof RELOADABLE_LIMITS[number]>
export type LiveRateLimits = Pick<RelayRateLimits, typeof RELOADABLE_RATE_LIMITS[number]>
export type LimitsFile = z.infer<typeof limitsFileSchema>

/** Parses the file's text; throws an Error naming the field and the problem. */
export function parseLimitsFile (text: string, source: string): LimitsFile {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err: any) {
    throw new Error(`${source} is not valid JSON: ${err.message}`)
  }
  const result = limitsFileSchema.safeParse(json)
  if (!result.success) throw new Error(`${source}: ${formatIssues(result.error)} (fields that apply without a restart: ${[...RELOADABLE_LIMITS.map((k) => `limits.${k}`), ...RELOADABLE_RATE_LIMITS.map((k) => `rate_limits.${k}`)].join(', ')})`)
  return result.data
}

/** The limits in effect: what the relay started with (config file and flags), overridden by the file. */
export function effectiveLimits (base: { limits: RelayLimits, rate_limits: RelayRateLimits }, file: LimitsFile): { limits: RelayLimits, rate_limits: RelayRateLimits } {
  return {
    limits: { ...base.limits, ...definedOnly(file.limits) },
    rate_limits: { ...base.rate_limits, ...definedOnly(file.rate_limits) }
  }
}

function definedOnly<T extends object> (o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

export type ReloadResult = 'applied' | 'unchanged' | 'invalid'

export interface LimitsFileWatcherOptions {
  path: string
  /** the limits the relay started with */
  base: { limits: RelayLimits, rate_limits: RelayRateLimits }
  /** puts new limits into effect; throws when it cannot (then they count as invalid) */
  apply: (next: { limits: RelayLimits, rate_limits: RelayRateLimits }) => void
  logger: Logger
  metrics: Pick<RelayMetrics, 'limitsReloadsTotal'>
  /** how often the file is read (default 10 s) */
  intervalMs?: number
}

/** How often the limits file is read. A ConfigMap volume changes by a symlink swap, which fs.watch on the file misses: reading it is simple and certain. */
export const LIMITS_POLL_MS = 10_000

/**
 * Reads the limits file now and every `intervalMs`, and applies it when its
 * text changed. A file that does not parse, breaks a range or sets a field
 * that needs a restart is logged (`limits_reload_failed`, with the reason)
 * and counted, and the limits in effect stay as they were; the same bad text
 * is not logged again until it changes. A missing file counts as invalid too
 * (a ConfigMap volume always holds it).
 */
export class LimitsFileWatcher {
  private lastText?: string
  private timer?: NodeJS.Timeout
  private running?: Promise<ReloadResult>

  constructor (private readonly opts: LimitsFileWatcherOptions) {}

  start (): void {
    this.timer = setInterval(() => { void this.check() }, this.opts.intervalMs ?? LIMITS_POLL_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  /** reads the file once (concurrent calls share one read) */
  async check (): Promise<ReloadResult> {
    this.running ??= this.read().finally(() => { this.running = undefined })
    return await this.running
  }

  private async read (): Promise<ReloadResult> {
    const { path, logger, metrics } = this.opts
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err: any) {
      return this.fail(`\0${String(err.code)}`, `cannot read limits file ${path}: ${err.message as string}`)
    }
    if (text === this.lastText) return 'unchanged'
    let next
    try {
      next = effectiveLimits(this.opts.base, parseLimitsFile(text, `limits file ${path}`))
      this.opts.apply(next)
    } catch (err: any) {
      return this.fail(text, err.message)
    }
    this.lastText = text
    metrics.limitsReloadsTotal.inc({ result: 'applied' })
    logger.info({ event: 'limits_reloaded', path, limits: next.limits, rate_limits: pickRates(next.rate_limits) }, 'limits reloaded')
    return 'applied'
  }

  private fail (key: string, message: string): ReloadResult {
    if (key !== this.lastText) {
      this.opts.metrics.limitsReloadsTotal.inc({ result: 'invalid' })
      this.opts.logger.error({ event: 'limits_reload_failed', path: this.opts.path, err: message }, 'limits file refused: the previous limits stay in effect')
    }
    this.lastText = key
    return 'invalid'
  }
}

/** the rate limits without the Redis URL (it may carry a password) */
function pickRates (r: RelayRateLimits): Partial<RelayRateLimits> {
  return Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'redis_url'))
}

/** libp2p's connection cap: max_connections, or when 0 enough for every reservation, two connections per circuit and 256 more */
export function connectionCap (limits: Pick<RelayLimits, 'max_connections' | 'max_reservations' | 'max_circuits'>): number {
  return limits.max_connections > 0 ? limits.max_connections : limits.max_reservations + 2 * limits.max_circuits + 256
}

/** What applying new limits touches in a running relay. */
export interface LiveLimitTargets {
  /** the object every decision reads (hop admission, the gater, new circuits) */
  limits: RelayLimits
  /** the rate limits in effect (what the relay reports) */
  rateLimits: RelayRateLimits
  hooks?: { limitsChanged: () => void }
  /** libp2p's connection manager (setMaxConnections prunes when the cap goes down) */
  connections: { setMaxConnections: (n: number) => void }
  rateLimiter?: { update: (r: LiveRateLimits) => void }
}

export function applyLiveLimits (t: LiveLimitTargets, next: { limits: RelayLimits, rate_limits: RelayRateLimits }): void {
  for (const k of RELOADABLE_LIMITS) t.limits[k] = next.limits[k]
  t.hooks?.limitsChanged()
  t.connections.setMaxConnections(connectionCap(t.limits))
  for (const k of RELOADABLE_RATE_LIMITS) t.rateLimits[k] = next.rate_limits[k]
  t.rateLimiter?.update(next.rate_limits)
}
