import { createHash, timingSafeEqual } from 'node:crypto'
import fastifySwagger from '@fastify/swagger'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodFastifySchemaValidationError,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod'
import { pino, type Logger } from 'pino'
import { Registry } from 'prom-client'
import { z } from 'zod'
import { AccountsUnavailableError } from '@pos-relay/accounts'
import { REDACTED_PATHS } from '@pos-relay/shared'
import { registerAccountRoutes, ticketResult, TICKETS, type AccountsOptions } from './accounts-routes.js'
import { createAuthThrottle, DEFAULT_AUTH_FAILURES_PER_MINUTE, sendThrottled } from './auth-throttle.js'
import { createMetrics, type RegistrationResult } from './metrics.js'
import { createRankedCache } from './ranked-cache.js'
import { createRelayListCache, etagMatches, negotiateEncoding } from './relay-list-cache.js'
import {
  errorBody,
  errorSchema,
  registrationResultSchema,
  relayIdSchema,
  relayQuerySchema,
  relayRecordSchema,
  relayRegistrationSchemaFor,
  SIGNATURE_FORMAT,
  signedDeletionSchema,
  type ErrorBody,
} from './schemas.js'
import { NotListedError, RegistrationConflictError, RegistrationForbiddenError, StoreUnavailableError, type RelayRecord, type RelayStore } from './types.js'

export interface DiscoveryServerOptions {
  store: RelayStore
  /** bearer secret relays must present to register / deregister */
  p2pSecret: string
  /** registration lifetime; default 30 */
  ttlSeconds?: number
  /** default 64 KiB */
  bodyLimitBytes?: number
  /**
   * Refuse loopback and private addresses too (public fleets). Unspecified, link-local, multicast
   * and broadcast addresses are always refused. Default false: local mode, kind and private
   * networks announce private addresses.
   */
  publicAddressesOnly?: boolean
  /**
   * Refuse unsigned registrations and deletions (403). Default false: the seed's contract (Bearer
   * secret + {id, peer_id, addrs}) is what existing relays speak. Entries registered signed are
   * owned by their key either way.
   */
  requireSigned?: boolean
  /**
   * Failed bearer authentications (p2p secret, admin secret, API key) one source IP may make per
   * minute before its authenticated requests are answered 429; default 60, 0 = no throttling.
   * The IP is the TCP peer's: behind a proxy that is the proxy's address.
   */
  authFailuresPerMinute?: number
  /** structured JSON logs; default: a pino logger at info level. The secret is never logged. */
  logger?: Logger | false
  /** the longest a served relay list may have been read before its request; default 1000 ms */
  listMaxAgeMs?: number
  /** ?for= answers remembered per list version (least recently used dropped beyond); default 10000; 0 = none */
  rankedCacheSize?: number
  /** default: a fresh Registry (never prom-client's global one); one server per registry */
  metricsRegistry?: Registry
  /**
   * Accounts, relay tickets and usage (POST /api/p2p/tickets, GET /api/p2p/ticket-keys,
   * /api/admin/*). Without it those routes answer 404.
   */
  accounts?: AccountsOptions
}

const RELAYS = '/api/p2p/relays'
/** Methods answered 405 on declared paths (the standard ones a client or scanner may try). */
const HTTP_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE']
const bearer = [{ bearerAuth: [] }]

const sha256 = (s: string) => createHash('sha256').update(s).digest()

/** Turns fastify-type-provider-zod validation issues into one error body. */
function validationError (err: { validation: ZodFastifySchemaValidationError[]; validationContext?: string }): ErrorBody {
  const context = err.validationContext ?? 'body'
  const issues = err.validation.map((v) => {
    const path = v.instancePath.split('/').filter(Boolean)
    // strictObject reports unknown keys on the parent object; point at the key itself
    const keys = v.params.keys
    if (Array.isArray(keys) && typeof keys[0] === 'string') path.push(keys[0])
    return { field: path.join('.'), message: v.message ?? 'is invalid' }
  })
  const fields = new Set(issues.map((i) => i.field))
  const only = fields.size === 1 ? [...fields][0] : undefined
  const message = issues.map((i) => `${i.field || context}: ${i.message}`).join('; ')
  return errorBody(400, message, only || undefined)
}

function clientErrorMessage (err: FastifyError, req: FastifyRequest, bodyLimit: number): string {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'request body is not valid JSON'
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'request body is empty; expected a JSON object'
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `unsupported content type ${JSON.stringify(req.headers['content-type'] ?? '')}; send application/json`
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `request body exceeds the limit of ${bodyLimit} bytes`
    default:
      return err.message
  }
}

function registrationResult (status: number): RegistrationResult | undefined {
  if (status === 200) return 'ok'
  if (status === 401) return 'unauthorized'
  if (status === 403) return 'forbidden'
  if (status === 404) return 'not_listed'
  if (status === 409) return 'conflict'
  if (status === 429) return 'throttled'
  if (status === 503) return 'unavailable'
  if (status >= 400 && status < 500) return 'invalid'
  return undefined // unexpected 5xx: not a registration outcome
}

/** Builds the discovery API (not yet listening: call `.listen({ host, port })`). */
export async function createDiscoveryServer (opts: DiscoveryServerOptions): Promise<FastifyInstance> {
  const { store } = opts
  const ttlSeconds = opts.ttlSeconds ?? 30
  const bodyLimit = opts.bodyLimitBytes ?? 64 * 1024
  const requireSigned = opts.requireSigned ?? false
  if (!opts.p2pSecret) throw new Error('p2pSecret must be a non-empty string')
  if (!(ttlSeconds > 0)) throw new RangeError('ttlSeconds must be > 0')
  if (opts.accounts) {
    if (!opts.accounts.adminSecret) throw new Error('accounts.adminSecret must be a non-empty string')
    // the two credentials must never be interchangeable
    if (opts.accounts.adminSecret === opts.p2pSecret) throw new Error('accounts.adminSecret must differ from p2pSecret')
  }
  const secretDigest = sha256(opts.p2pSecret)
  const throttle = createAuthThrottle(opts.authFailuresPerMinute ?? DEFAULT_AUTH_FAILURES_PER_MINUTE)
  const registry = opts.metricsRegistry ?? new Registry()
  const metrics = createMetrics(registry, store)

  // Typed as the base logger so the instance matches the plain FastifyInstance we return.
  const logger: FastifyBaseLogger | undefined =
    opts.logger === false
      ? undefined
      : (opts.logger ?? pino({ name: 'pos-relay-discovery', redact: REDACTED_PATHS }))
  // maxParamLength: find-my-way's default (100) answered ids of 101-128 characters and jtis of
  // 101-256, which the schemas allow, with an undocumented 414 before any route ran; above the
  // longest allowed value, the route's schema refuses with a 400 naming the field
  const app = Fastify({ bodyLimit, routerOptions: { maxParamLength: 1024 }, ...(logger ? { loggerInstance: logger } : { logger: false }) })
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  // Only JSON is accepted; without this text/plain would be parsed and reach validation as a string.
  app.removeContentTypeParser('text/plain')

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'pos-relay discovery API',
        version: '0.1.0',
        description:
          'Registry of live libp2p Circuit Relay v2 relays.\n\n' +
          'Registrations and deletions need the shared P2P secret (Bearer) and may also be signed by the relay\'s own key: ' +
          'an entry registered signed belongs to that key, so the shared secret alone can neither take it over, refresh it ' +
          'nor delete it. A signed POST adds `signed_at` and `signature` to its body; a signed DELETE sends ' +
          '`{peer_id, signed_at, signature, addrs?}` as its JSON body. ' +
          SIGNATURE_FORMAT,
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'The relays\' shared P2P secret' },
          apiKeyAuth: { type: 'http', scheme: 'bearer', description: 'An account API key (pra_…)' },
          adminAuth: { type: 'http', scheme: 'bearer', description: 'The admin secret (distinct from the P2P secret)' },
        },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: (documentObject) => {
      const doc = 'openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject
      // @fastify/swagger marks every body required; a DELETE without one is an unsigned deletion
      const del = (doc.paths as Record<string, any> | undefined)?.[`${RELAYS}/{id}`]?.delete
      if (del?.requestBody) del.requestBody.required = false
      return doc
    },
  })

  const requireBearer = async (req: FastifyRequest, reply: FastifyReply) => {
    const wait = await throttle?.retryAfter(req.ip)
    if (wait !== undefined) return sendThrottled(reply, wait)
    const header = req.headers.authorization ?? ''
    const token = /^bearer /i.test(header) ? header.slice(7).trim() : ''
    // Compare digests so neither content nor length of the secret leaks through timing.
    if (token && timingSafeEqual(sha256(token), secretDigest)) return
    req.log.warn({ reason: header ? 'invalid bearer token' : 'no credentials' }, 'unauthorized request')
    await throttle?.failed(req.ip)
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="pos-relay"')
      .send(errorBody(401, 'missing or invalid bearer token'))
  }

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof StoreUnavailableError) {
      req.log.warn({ cause: (err.cause as Error | undefined)?.message }, 'relay store unavailable')
      return reply.code(503).send(errorBody(503, 'relay registry (Redis) is unreachable'))
    }
    if (err instanceof AccountsUnavailableError) {
      req.log.warn({ cause: (err.cause as Error | undefined)?.message }, 'accounts store unavailable')
      return reply.code(503).send(errorBody(503, 'accounts store (Redis) is unreachable'))
    }
    if (err instanceof RegistrationForbiddenError) {
      req.log.warn({ relay_id: (req.params as { id?: string }).id ?? (req.body as { id?: string } | undefined)?.id, reason: err.reason }, 'signed-registration rule refused a request')
      return reply.code(403).send(errorBody(403, err.message, err.field))
    }
    if (err instanceof NotListedError) {
      req.log.debug({ relay_id: err.id }, 'refresh-only registration of an entry that is not listed')
      return reply.code(404).send(errorBody(404, err.message, 'id'))
    }
    if (err instanceof RegistrationConflictError) {
      req.log.warn({ relay_id: err.id, owner_peer_id: err.ownerPeerId }, 'registration refused: id owned by another peer')
      return reply.code(409).send(errorBody(409, err.message, 'peer_id'))
    }
    if (hasZodFastifySchemaValidationErrors(err)) return reply.code(400).send(validationError(err))
    const status = err.statusCode
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send(errorBody(status, clientErrorMessage(err, req, bodyLimit)))
    }
    req.log.error({ err }, 'request failed')
    return reply.code(500).send(errorBody(500, 'internal server error'))
  })

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched'
    const labels = { route, method: req.method, status_code: String(reply.statusCode) }
    metrics.httpRequests.inc(labels)
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000)
    if (route === RELAYS && req.method === 'POST') {
      const result = registrationResult(reply.statusCode)
      if (result) metrics.registrations.inc({ result })
    }
    if (route === TICKETS && req.method === 'POST' && opts.accounts) {
      const result = ticketResult(reply.statusCode)
      if (result) metrics.ticketRequests.inc({ result })
    }
  })

  // Every declared path answers the methods it does not declare with 405 and an Allow header
  // (registered below, once all routes exist); fastify adds HEAD to each GET itself.
  const declared = new Map<string, Set<string>>()
  app.addHook('onRoute', (route) => {
    const methods = declared.get(route.url) ?? new Set<string>()
    for (const m of [route.method].flat()) methods.add(m)
    declared.set(route.url, methods)
  })
  app.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody(404, `no route ${req.method} ${req.url.split('?')[0]}`)))

  const api = app.withTypeProvider<ZodTypeProvider>()
  const errors = { 400: errorSchema, 401: errorSchema, 413: errorSchema, 415: errorSchema, 429: errorSchema, 503: errorSchema }

  const relayList = createRelayListCache({ store, maxAgeMs: opts.listMaxAgeMs ?? 1000, onRefresh: (relays) => metrics.relaysListed.set(relays.length) })
  const ranked = createRankedCache<RelayRecord>({ maxEntries: opts.rankedCacheSize ?? 10_000, onLookup: (hit) => metrics.rankedLookups.inc({ result: hit ? 'hit' : 'miss' }) })

  api.get(
    RELAYS,
    {
      schema: {
        summary: 'List live relays, or the few ranked for one peer',
        description:
          'Without `for`: every live relay. The list is read from the registry at most once per second per discovery replica ' +
          'and shared by all requests (never older than 1 s); it carries a weak `ETag` (send it back in `If-None-Match` for a ' +
          '304 without a body), `Cache-Control: no-cache`, and is compressed when `Accept-Encoding` allows (br, else gzip).\n\n' +
          'With `for=<peer id>`: the `count` relays ranked first for that peer by rendezvous hashing, best first: score = first ' +
          '8 bytes, big-endian unsigned, of sha256(utf8(relay peer_id) || 0x00 || utf8(key)), key = the peer id in base58btc form; ' +
          'highest score first, equal scores by the relay peer_id strings compared byte-wise (docs/protocol.md, ' +
          'docs/protocol-vectors/ranking.json). A peer reserves on the first relays ranked for its own peer id; a dialer asks for ' +
          'the target\'s. Other query parameters are ignored (an older discovery ignores `for` and answers the full list, which ' +
          'clients then rank themselves).',
        tags: ['relays'],
        querystring: relayQuerySchema,
        response: {
          200: z.array(relayRecordSchema),
          304: z.null().meta({ description: 'Not modified: If-None-Match matched the ETag (full list only)' }),
          400: errorSchema,
          503: errorSchema,
        },
      },
    },
    async (req, typedReply) => {
      // bodies are serialized here (the shared list once per snapshot), not by the route's serializer
      const reply = typedReply as FastifyReply
      const snapshot = await relayList.get()
      reply.header('cache-control', 'no-cache')
      const { for: key, count } = req.query
      if (key !== undefined) {
        return reply.type('application/json; charset=utf-8').send(JSON.stringify(ranked.get(snapshot, key, count)))
      }
      reply.header('etag', snapshot.etag).header('vary', 'accept-encoding')
      if (etagMatches(req.headers['if-none-match'], snapshot.etag)) return reply.code(304).send()
      const encoding = negotiateEncoding(req.headers['accept-encoding'])
      if (encoding !== 'identity') reply.header('content-encoding', encoding)
      return reply.type('application/json; charset=utf-8').send(await snapshot.body(encoding))
    }
  )

  api.post(
    RELAYS,
    {
      onRequest: requireBearer,
      schema: {
        summary: 'Register or refresh (heartbeat) a relay',
        description:
          'While an entry is live its id belongs to its peer_id: re-registering the id with the same peer_id refreshes it ' +
          '(heartbeat; registered_at is kept), with another peer_id answers 409 and changes nothing. ' +
          'With `refresh_only: true` (the heartbeat of relays the operator lists) a live entry is refreshed and an absent one ' +
          'is not created: 404, nothing stored; signed, its operation is `refresh`. ' +
          'Once the entry expired or was deleted, any peer may take the id; for 120 s after a signed entry expired or was ' +
          'deleted only a signed registration with a later signed_at may (a captured one cannot re-create it). ' +
          'With `signed_at` and `signature` the registration is signed by the relay\'s key (see the API description); an entry ' +
          'registered signed can then only be refreshed signed by that key with a later signed_at: an unsigned refresh, a bad ' +
          'signature, a replayed or skewed signed_at answer 403 and change nothing.' +
          (requireSigned ? ' This server runs with --require-signed: unsigned registrations answer 403.' : ''),
        tags: ['relays'],
        security: bearer,
        body: relayRegistrationSchemaFor({ publicOnly: opts.publicAddressesOnly ?? false }),
        response: { 200: registrationResultSchema, ...errors, 403: errorSchema, 404: errorSchema, 409: errorSchema },
      },
    },
    async (req) => {
      const { signature, signed_at, refresh_only, ...reg } = req.body
      if (signature === undefined && requireSigned) {
        throw new RegistrationForbiddenError('required', 'this discovery server requires signed registrations (signed_at and signature)', 'signature')
      }
      const proof = signature !== undefined && signed_at !== undefined ? { signature, signed_at } : undefined
      const record = await store.register(reg, ttlSeconds * 1000, proof, { refreshOnly: refresh_only === true })
      const first = record.registered_at === record.updated_at
      // heartbeats are frequent; only first registrations are worth an info line
      const fields = { relay_id: record.id, peer_id: record.peer_id, addrs: record.addrs.length }
      if (first) req.log.info(fields, 'relay registered')
      else req.log.debug(fields, 'relay refreshed')
      return { ...record, ttl_seconds: ttlSeconds }
    }
  )

  api.delete(
    `${RELAYS}/:id`,
    {
      onRequest: requireBearer,
      schema: {
        summary: 'Deregister a relay (idempotent)',
        description:
          'Without a body the deletion is unsigned: refused (403) for an entry registered signed, and on a server running ' +
          'with --require-signed. With a JSON body `{peer_id, signed_at, signature, addrs?}` it is signed (op "delete", see ' +
          'the API description) and must be signed by the key of the entry\'s peer_id with a signed_at later than the last ' +
          'one accepted for the id; otherwise 403, nothing changed.',
        tags: ['relays'],
        security: bearer,
        params: z.object({ id: relayIdSchema }),
        body: signedDeletionSchema.nullish(),
        response: { 204: z.null().meta({ description: 'Deregistered (or was not registered)' }), ...errors, 403: errorSchema },
      },
    },
    async (req, reply) => {
      const body = req.body
      if (body == null && requireSigned) {
        throw new RegistrationForbiddenError('required', 'this discovery server requires signed deletions (a JSON body with peer_id, signed_at and signature)', 'signature')
      }
      const proof = body == null ? undefined : { peer_id: body.peer_id, addrs: body.addrs ?? [], signed_at: body.signed_at, signature: body.signature }
      const existed = await store.deregister(req.params.id, proof)
      req.log.info({ relay_id: req.params.id, existed }, 'relay deregistered')
      return reply.code(204).send(null)
    }
  )

  api.get(
    '/healthz',
    { logLevel: 'warn', schema: { summary: 'Liveness', tags: ['ops'], response: { 200: z.object({ status: z.literal('ok') }) } } },
    async () => ({ status: 'ok' as const })
  )

  api.get(
    '/readyz',
    {
      logLevel: 'warn',
      schema: {
        summary: 'Readiness: the relay store is reachable',
        tags: ['ops'],
        response: { 200: z.object({ status: z.literal('ready') }), 503: errorSchema },
      },
    },
    async () => {
      await store.ping()
      return { status: 'ready' as const }
    }
  )

  registerAccountRoutes(app, opts.accounts, throttle)

  app.get('/metrics', { logLevel: 'warn', schema: { hide: true } }, async (_req, reply) => {
    return reply.header('content-type', registry.contentType).send(await registry.metrics())
  })

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  for (const [url, methods] of [...declared]) {
    const allow = [...methods].sort().join(', ')
    const others = HTTP_METHODS.filter((m) => !methods.has(m))
    if (others.length === 0) continue
    app.route({
      method: others,
      url,
      schema: { hide: true },
      // onRequest: before body parsing, which refuses a body method without a content type first
      onRequest: async (req, reply) => reply.code(405).header('allow', allow).send(errorBody(405, `${req.method} is not allowed here; allowed: ${allow}`)),
      handler: async () => undefined,
    })
  }

  return app
}
