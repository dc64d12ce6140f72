import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { createLogger } from '@pos-relay/shared'

/** A real pino logger writing into memory; returns every line written. */
function capture (): { logger: ReturnType<typeof createLogger>, lines: () => string[] } {
  const chunks: string[] = []
  const destination = new Writable({ write (chunk, _enc, done) { chunks.push(String(chunk)); done() } })
  return { logger: createLogger({ name: 'redaction-test', level: 'trace', destination }), lines: () => chunks.join('').split('\n').filter(Boolean) }
}

describe('log redaction', () => {
  // each value is a canary that must never reach the output
  const secrets: [string, Record<string, unknown>][] = [
    ['api_key', { api_key: 'pra_canary_apikey_1' }],
    ['apiKey nested', { account: { apiKey: 'pra_canary_apikey_2' } }],
    ['ticket', { ticket: 'eyJ.canary-ticket-3.sig' }],
    ['ticket nested', { req: { ticket: 'eyJ.canary-ticket-4.sig' } }],
    ['redis_url', { redis_url: 'redis://:canary-redis-5@10.0.0.1:6379' }],
    ['redisUrl nested', { opts: { redisUrl: 'redis://:canary-redis-6@10.0.0.1:6379' } }],
    ['config.rate_limits.redis_url', { config: { rate_limits: { redis_url: 'redis://:canary-redis-7@h:6379' } } }],
    ['config.auth.redis_url', { config: { auth: { redis_url: 'redis://:canary-redis-8@h:6379' } } }],
    ['p2p_secret', { config: { p2p_secret: 'canary-p2p-9' } }],
    ['keypair', { keypair: 'canary-keypair-10' }],
    ['admin secret', { adminSecret: 'canary-admin-11' }],
    ['authorization header', { req: { headers: { authorization: 'Bearer canary-auth-12' } } }],
  ]

  for (const [name, fields] of secrets) {
    it(`hides ${name}`, () => {
      const { logger, lines } = capture()
      logger.info({ ...fields, relay_id: 'visible-relay' }, 'with a secret')
      const out = lines().join('\n')
      const canary = /canary[-_][a-z0-9]+[-_]\d+/.exec(JSON.stringify(fields))?.[0]
      assert.ok(canary != null)
      assert.equal(out.includes(canary), false, `${name} leaked: ${out}`)
      assert.match(out, /\[redacted\]/)
      assert.match(out, /visible-relay/, 'other fields stay')
    })
  }
})
