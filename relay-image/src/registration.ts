import type { PrivateKey } from '@libp2p/interface'
import { Backoff, readTextCapped, signRegistration, sleep, type Logger } from '@pos-relay/shared'
import type { RelayMetrics } from './metrics.js'

export interface RegistrationRecord {
  id: string
  peer_id: string
  addrs: string[]
}

export interface DiscoveryRegistrationOptions {
  apiUrl: string
  secret: string
  /**
   * The relay's libp2p key: each registration and deletion is signed with it (signed_at +
   * signature, see @pos-relay/shared registration-signature), so the entry belongs to this key
   * and the shared secret alone can neither refresh nor delete it. Without it: unsigned (the
   * seed's contract). record().peer_id must be this key's peer id.
   */
  privateKey?: PrivateKey
  /** called before each registration, so address changes are picked up */
  record: () => RegistrationRecord
  logger: Logger
  metrics: RelayMetrics
  /**
   * Heartbeats only refresh an entry another writer created (the operator, for pool relays):
   * `refresh_only: true`, and discovery's 404 (not listed) is a normal state, not a failure.
   * A relay the operator delisted therefore never lists itself again (docs/registry.md).
   */
  refreshOnly?: boolean
  /** refresh-only: how soon to ask again after discovery answered "not listed" (default NOT_LISTED_RETRY_MS) */
  notListedRetryMs?: number
  /** used when the discovery API does not say its TTL */
  defaultTtlSeconds?: number
  requestTimeoutMs?: number
}

/**
 * Refresh-only: the retry after a "not listed" answer. A third of the shortest
 * TTL a pool may set (3 s), so an entry the operator just created is refreshed
 * by the relay before it can expire. Only unlisted pool relays (starting, not
 * Ready, draining) ask this often.
 */
export const NOT_LISTED_RETRY_MS = 1000

/** refresh-only heartbeat found no entry (discovery's 404) */
class NotListed extends Error {}

/** discovery's replies to a registration are a few hundred bytes; anything far larger is not discovery */
export const MAX_REGISTRATION_REPLY_BYTES = 64 * 1024

/** true when `url` sends its bearer secret in clear text over a network (http: to a host other than loopback) */
export function sendsSecretInClear (url: string): boolean {
  const u = new URL(url)
  if (u.protocol !== 'http:') return false
  const host = u.hostname.replace(/^\[|\]$/g, '')
  return !(host === 'localhost' || host === '::1' || /^127\./.test(host))
}

/**
 * Keeps this relay registered with the discovery API: POST on start, then a
 * heartbeat at a third of the TTL the API reports, so two heartbeats can be
 * lost before the entry expires. Failures retry with capped backoff and never
 * stop the relay (the original relay panicked when the first attempt failed).
 */
export class DiscoveryRegistration {
  private readonly opts: DiscoveryRegistrationOptions
  private readonly controller = new AbortController()
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 })
  private loop?: Promise<void>
  private registeredUntil = 0
  /** refresh-only: whether the last heartbeat found the entry absent (logged on change only) */
  private notListed = false
  /** signed_at must grow for each signed operation on our id, even within one millisecond */
  private lastSignedAt = 0
  /** resolves after the first successful registration */
  readonly firstRegistration: Promise<void>
  private markRegistered!: () => void

  constructor (opts: DiscoveryRegistrationOptions) {
    this.opts = opts
    this.firstRegistration = new Promise((resolve) => { this.markRegistered = resolve })
    opts.metrics.sources.registered = () => Date.now() < this.registeredUntil
    if (sendsSecretInClear(opts.apiUrl)) {
      // anyone on the path can read the p2p secret, then register or take over relays with it
      opts.logger.warn({ event: 'secret_over_plain_http', discovery: new URL(opts.apiUrl).origin }, 'api_url is plain http to a non-loopback host: the p2p secret crosses the network unencrypted; use https')
    }
  }

  private get endpoint (): string {
    return new URL('api/p2p/relays', this.opts.apiUrl.endsWith('/') ? this.opts.apiUrl : this.opts.apiUrl + '/').toString()
  }

  start (): void {
    this.loop ??= this.run().catch(() => {})
  }

  private async run (): Promise<void> {
    const signal = this.controller.signal
    while (!signal.aborted) {
      let delay: number
      try {
        const ttl = await this.register(signal)
        this.backoff.reset()
        delay = Math.max(1000, Math.min(60_000, (ttl * 1000) / 3))
      } catch (err: any) {
        if (err instanceof NotListed) {
          // Not a failure: the operator lists this relay when its pod is Ready. Ask again soon: the entry
          // the operator creates lives only for the pool's TTL (3 s at least), and if the operator stops
          // right after creating it, only this relay's refresh keeps it (and the relay) listed. At
          // discovery's TTL / 3 (10 s by default) the entry of a 3 s pool expired first.
          this.backoff.reset()
          await sleep(this.opts.notListedRetryMs ?? NOT_LISTED_RETRY_MS, signal).catch(() => {})
          continue
        }
        if (signal.aborted) return
        delay = this.backoff.next()
        this.opts.metrics.registrationFailuresTotal.inc()
        this.opts.logger.warn({ event: 'registration_failed', err: err.message, retry_in_ms: delay }, 'registration with discovery failed; retrying')
      }
      await sleep(delay, signal).catch(() => {})
    }
  }

  private nextSignedAt (): number {
    this.lastSignedAt = Math.max(Date.now(), this.lastSignedAt + 1)
    return this.lastSignedAt
  }

  private async register (signal: AbortSignal): Promise<number> {
    const record = this.opts.record()
    const key = this.opts.privateKey
    const refreshOnly = this.opts.refreshOnly === true
    const proof = key == null
      ? {}
      : await signRegistration(key, { op: refreshOnly ? 'refresh' : 'register', id: record.id, peer_id: record.peer_id, addrs: record.addrs, signed_at: this.nextSignedAt() })
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.opts.secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: record.id, peer_id: record.peer_id, addrs: record.addrs, ...(refreshOnly ? { refresh_only: true } : {}), ...proof }),
      signal: AbortSignal.any([signal, AbortSignal.timeout(this.opts.requestTimeoutMs ?? 5000)])
    })
    const text = await readTextCapped(res, MAX_REGISTRATION_REPLY_BYTES)
    if (refreshOnly && res.status === 404) {
      this.opts.metrics.registrationAttemptsTotal.inc({ result: 'not_listed' })
      this.registeredUntil = 0
      if (!this.notListed) this.opts.logger.info({ event: 'not_listed', discovery: this.endpoint }, 'not listed in discovery; heartbeats refresh the entry once the operator lists this relay')
      this.notListed = true
      throw new NotListed()
    }
    if (!res.ok) {
      this.opts.metrics.registrationAttemptsTotal.inc({ result: res.status === 401 ? 'unauthorized' : res.status >= 500 ? 'unavailable' : 'rejected' })
      throw new Error(`discovery answered ${res.status}: ${text.slice(0, 300)}`)
    }
    this.opts.metrics.registrationAttemptsTotal.inc({ result: 'ok' })
    let ttl = this.opts.defaultTtlSeconds ?? 30
    try {
      const body = JSON.parse(text)
      if (typeof body.ttl_seconds === 'number' && body.ttl_seconds > 0) ttl = body.ttl_seconds
    } catch {}
    const first = this.registeredUntil === 0
    this.registeredUntil = Date.now() + ttl * 1000
    this.notListed = false
    if (first) {
      this.opts.logger.info({ event: 'registered', discovery: this.endpoint, ttl_seconds: ttl, addrs: record.addrs }, 'registered with discovery')
      this.markRegistered()
    }
    return ttl
  }

  /** Stops heartbeats and removes this relay from discovery now (best effort, bounded). */
  async deregister (id: string, timeoutMs = 2000): Promise<boolean> {
    this.controller.abort()
    await this.loop
    this.registeredUntil = 0
    try {
      const key = this.opts.privateKey
      let signed: { headers: Record<string, string>, body?: string } = { headers: {} }
      if (key != null) {
        const peerId = this.opts.record().peer_id
        const proof = await signRegistration(key, { op: 'delete', id, peer_id: peerId, addrs: [], signed_at: this.nextSignedAt() })
        signed = { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: peerId, ...proof }) }
      }
      const res = await fetch(`${this.endpoint}/${encodeURIComponent(id)}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${this.opts.secret}`, ...signed.headers },
        ...(signed.body != null ? { body: signed.body } : {}),
        signal: AbortSignal.timeout(timeoutMs)
      })
      if (!res.ok) throw new Error(`discovery answered ${res.status}`)
      this.opts.logger.info({ event: 'deregistered' }, 'removed from discovery')
      return true
    } catch (err: any) {
      this.opts.logger.warn({ event: 'deregistration_failed', err: err.message }, 'could not deregister; the entry expires with its TTL')
      return false
    }
  }

  /** Stops heartbeats without deregistering. */
  async stop (): Promise<void> {
    this.controller.abort()
    await this.loop
  }
}
