import type { FastifyReply } from 'fastify'
import { RateLimiterMemory } from 'rate-limiter-flexible'
import { errorBody } from './schemas.js'

/** Default failed authentications per source IP and minute before that IP gets 429. */
export const DEFAULT_AUTH_FAILURES_PER_MINUTE = 60

/**
 * Counts failed bearer authentications per source IP (in this process's memory: a guess rate,
 * not billing, so per-replica counts are fine). While an IP is over the limit, every authenticated
 * request from it is answered 429 before its token is even compared, so guessing stops there.
 */
export interface AuthThrottle {
  /** seconds until `ip` may try again, or undefined when it is not throttled */
  retryAfter(ip: string): Promise<number | undefined>
  failed(ip: string): Promise<void>
}

/** undefined (no throttling) when `failuresPerMinute` is 0 */
export function createAuthThrottle (failuresPerMinute: number): AuthThrottle | undefined {
  if (!Number.isInteger(failuresPerMinute) || failuresPerMinute < 0) {
    throw new RangeError(`authFailuresPerMinute must be a non-negative integer, got ${failuresPerMinute}`)
  }
  if (failuresPerMinute === 0) return undefined
  const limiter = new RateLimiterMemory({ points: failuresPerMinute, duration: 60, keyPrefix: 'auth-failures' })
  return {
    async retryAfter (ip) {
      const res = await limiter.get(ip)
      if (!res || res.consumedPoints < failuresPerMinute) return undefined
      return Math.max(1, Math.ceil(res.msBeforeNext / 1000))
    },
    async failed (ip) {
      // rejects once the points are used up; the count is what matters, not the outcome
      await limiter.consume(ip).catch(() => {})
    },
  }
}

/** Answers 429 with Retry-After; the body is the API's usual error. */
export function sendThrottled (reply: FastifyReply, retryAfterSeconds: number): FastifyReply {
  return reply
    .code(429)
    .header('retry-after', String(retryAfterSeconds))
    .send(errorBody(429, `too many failed authentications from this address; retry in ${retryAfterSeconds} s`))
}
