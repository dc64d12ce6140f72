import { createHash, timingSafeEqual } from 'node:crypto'
import type { AccountStore, RevocationBus, Tier, TicketIssuer, UsageQuery, UsageRow } from '@pos-relay/accounts'
import { DEFAULT_TIERS, usageToCsv } from '@pos-relay/accounts'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from 'zod'
import {
  accountIdSchema,
  accountSchema,
  accountWithKeySchema,
  createAccountBodySchemaFor,
  jtiParamsSchema,
  jwksSchema,
  revokeResultSchema,
  ticketRequestSchema,
  ticketResponseSchema,
  usageQuerySchema,
  usageRowSchema,
} from './accounts-schemas.js'
import { sendThrottled, type AuthThrottle } from './auth-throttle.js'
import type { TicketRequestResult } from './metrics.js'
import { errorBody, errorSchema } from './schemas.js'

/** Accounts, tickets and usage on the discovery API (see docs/accounts.md). */
export interface AccountsOptions {
  store: AccountStore
  issuer: TicketIssuer
  /** bearer secret of the admin routes; must differ from the relays' p2p secret */
  adminSecret: string
  /** publishes ticket revocations (and is the bus the store publishes account revocations on) */
  revocations: RevocationBus
  usage: { query: (opts: UsageQuery) => Promise<UsageRow[]> }
  tiers: Record<string, Tier>
}

export const TICKETS = '/api/p2p/tickets'
export const TICKET_KEYS = '/api/p2p/ticket-keys'
export const ADMIN_ACCOUNTS = '/api/admin/accounts'
export const ADMIN_USAGE = '/api/admin/usage'

const sha256 = (s: string) => createHash('sha256').update(s).digest()
const bearerToken = (req: FastifyRequest) => {
  const header = req.headers.authorization ?? ''
  return /^bearer /i.test(header) ? header.slice(7).trim() : ''
}

const unauthorized = (reply: FastifyReply, message: string) =>
  reply.code(401).header('www-authenticate', 'Bearer realm="pos-relay"').send(errorBody(401, message))

/**
 * Registers the account routes. They are always part of the API (and of its OpenAPI document); a
 * server without `accounts` answers them with 404.
 */
export function registerAccountRoutes (app: FastifyInstance, accounts: AccountsOptions | undefined, throttle?: AuthThrottle): void {
  const api = app.withTypeProvider<ZodTypeProvider>()
  const adminDigest = accounts ? sha256(accounts.adminSecret) : undefined

  const enabled = async (_req: FastifyRequest, reply: FastifyReply) => {
    if (!accounts) return reply.code(404).send(errorBody(404, 'accounts are not enabled on this discovery server'))
  }
  const requireAdmin = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!accounts || !adminDigest) return reply.code(404).send(errorBody(404, 'accounts are not enabled on this discovery server'))
    const wait = await throttle?.retryAfter(req.ip)
    if (wait !== undefined) return sendThrottled(reply, wait)
    const token = bearerToken(req)
    // digests, so neither content nor length of the secret leaks through timing
    if (token && timingSafeEqual(sha256(token), adminDigest)) return
    req.log.warn({ reason: token ? 'invalid admin secret' : 'no credentials' }, 'unauthorized admin request')
    await throttle?.failed(req.ip)
    return unauthorized(reply, 'missing or invalid admin secret')
  }
  const requireApiKey = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!accounts) return reply.code(404).send(errorBody(404, 'accounts are not enabled on this discovery server'))
    const wait = await throttle?.retryAfter(req.ip)
    if (wait !== undefined) return sendThrottled(reply, wait)
    const token = bearerToken(req)
    const account = token ? await accounts.store.authenticate(token) : undefined
    if (account) {
      ;(req as FastifyRequest & { account?: typeof account }).account = account
      return
    }
    req.log.warn({ reason: token ? 'unknown, wrong or disabled API key' : 'no credentials' }, 'unauthorized ticket request')
    await throttle?.failed(req.ip)
    return unauthorized(reply, 'missing or invalid API key')
  }
  const get = () => accounts as AccountsOptions

  const admin = [{ adminAuth: [] }]
  const adminErrors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 413: errorSchema, 415: errorSchema, 429: errorSchema, 503: errorSchema }
  const adminGetErrors = { 400: errorSchema, 401: errorSchema, 404: errorSchema, 429: errorSchema, 503: errorSchema }
  const notFound = (reply: FastifyReply) => reply.code(404).send(errorBody(404, 'account not found'))
  const idParams = z.object({ id: accountIdSchema })

  api.post(
    TICKETS,
    {
      onRequest: requireApiKey,
      schema: {
        summary: 'Exchange an account API key for a short-lived relay ticket bound to a peer id',
        tags: ['tickets'],
        security: [{ apiKeyAuth: [] }],
        body: ticketRequestSchema,
        response: { 200: ticketResponseSchema, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 413: errorSchema, 415: errorSchema, 429: errorSchema, 503: errorSchema },
      },
    },
    async (req, reply) => {
      const { issuer, tiers } = get()
      const account = (req as FastifyRequest & { account: { id: string, tier: string } }).account
      if (!(account.tier in tiers)) {
        req.log.warn({ account: account.id, tier: account.tier }, 'account tier is not configured')
        return reply.code(403).send(errorBody(403, `the account's tier "${account.tier}" is not configured on this server`))
      }
      const t = await issuer.issue({ account: account.id, tier: account.tier, peer: req.body.peer_id })
      req.log.debug({ account: account.id, tier: account.tier, jti: t.jti }, 'ticket issued')
      reply.header('cache-control', 'no-store')
      return { ticket: t.ticket, expires_at: t.expires_at, account: account.id, tier: account.tier, jti: t.jti }
    }
  )

  api.get(
    TICKET_KEYS,
    {
      onRequest: enabled,
      schema: {
        summary: 'Public keys relays use to verify tickets (JWKS)',
        tags: ['tickets'],
        response: { 200: jwksSchema, 404: errorSchema },
      },
    },
    async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=60')
      return get().issuer.jwks()
    }
  )

  api.post(
    ADMIN_ACCOUNTS,
    {
      onRequest: requireAdmin,
      schema: {
        summary: 'Create an account; the response holds its API key, shown once',
        tags: ['admin'],
        security: admin,
        // without accounts the document shows the default tiers
        body: createAccountBodySchemaFor(Object.keys(accounts?.tiers ?? DEFAULT_TIERS)),
        response: { 201: accountWithKeySchema, ...adminErrors },
      },
    },
    async (req, reply) => {
      const { store, tiers } = get()
      if (!(req.body.tier in tiers)) {
        return reply.code(400).send(errorBody(400, `tier: unknown tier "${req.body.tier}" (configured: ${Object.keys(tiers).join(', ')})`, 'tier'))
      }
      const created = await store.create(req.body)
      req.log.info({ account: created.account.id, tier: created.account.tier }, 'account created')
      return reply.code(201).header('cache-control', 'no-store').send(created)
    }
  )

  api.get(
    ADMIN_ACCOUNTS,
    {
      onRequest: requireAdmin,
      schema: { summary: 'List accounts', tags: ['admin'], security: admin, response: { 200: z.array(accountSchema), ...adminGetErrors } },
    },
    async () => await get().store.list()
  )

  for (const action of ['disable', 'enable'] as const) {
    api.post(
      `${ADMIN_ACCOUNTS}/:id/${action}`,
      {
        onRequest: requireAdmin,
        schema: {
          summary: action === 'disable'
            ? 'Disable an account: its API key stops working and its tickets are revoked on every relay'
            : 'Enable a disabled account',
          tags: ['admin'],
          security: admin,
          params: idParams,
          response: { 200: accountSchema, ...adminErrors },
        },
      },
      async (req, reply) => {
        const { store } = get()
        const account = action === 'disable' ? await store.disable(req.params.id) : await store.enable(req.params.id)
        if (!account) return notFound(reply)
        req.log.info({ account: account.id }, `account ${action}d`)
        return account
      }
    )
  }

  api.post(
    `${ADMIN_ACCOUNTS}/:id/rotate-key`,
    {
      onRequest: requireAdmin,
      schema: {
        summary: 'Replace the account API key; the old key stops working at once',
        tags: ['admin'],
        security: admin,
        params: idParams,
        response: { 200: accountWithKeySchema, ...adminErrors },
      },
    },
    async (req, reply) => {
      const rotated = await get().store.rotateKey(req.params.id)
      if (!rotated) return notFound(reply)
      req.log.info({ account: rotated.account.id, key_id: rotated.account.key_id }, 'account API key rotated')
      return reply.header('cache-control', 'no-store').send(rotated)
    }
  )

  api.post(
    '/api/admin/tickets/:jti/revoke',
    {
      onRequest: requireAdmin,
      schema: {
        summary: 'Revoke one ticket on every relay (until it would have expired)',
        tags: ['admin'],
        security: admin,
        params: jtiParamsSchema,
        response: { 200: revokeResultSchema, ...adminErrors },
      },
    },
    async (req) => {
      await get().revocations.publish({ kind: 'ticket', id: req.params.jti })
      req.log.info({ jti: req.params.jti }, 'ticket revoked')
      return { jti: req.params.jti, revoked: true as const }
    }
  )

  api.get(
    ADMIN_USAGE,
    {
      onRequest: requireAdmin,
      schema: {
        summary: 'Metered usage per account and UTC hour, as JSON or CSV',
        description: 'Unknown query parameters answer 400 (a misspelt `account` must not silently return every account).',
        tags: ['admin'],
        security: admin,
        querystring: usageQuerySchema,
        response: {
          200: {
            description: 'Usage rows sorted by hour, then account',
            content: { 'application/json': { schema: z.array(usageRowSchema) }, 'text/csv': { schema: z.string() } },
          },
          ...adminGetErrors,
        },
      },
    },
    async (req, reply) => {
      const now = new Date()
      const to = req.query.to !== undefined ? new Date(req.query.to) : now
      const from = req.query.from !== undefined ? new Date(req.query.from) : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1))
      let rows: UsageRow[]
      try {
        rows = await get().usage.query({ from, to, ...(req.query.account !== undefined ? { account: req.query.account } : {}) })
      } catch (err) {
        if (err instanceof RangeError) return reply.code(400).send(errorBody(400, err.message.replace(/^usage query: /, '')))
        throw err
      }
      if (req.query.format === 'csv') {
        return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="usage.csv"').send(usageToCsv(rows))
      }
      return rows
    }
  )
}

export function ticketResult (status: number): TicketRequestResult | undefined {
  if (status === 200) return 'ok'
  if (status === 401) return 'unauthorized'
  if (status === 403) return 'tier_unknown'
  if (status === 429) return 'throttled'
  if (status === 503) return 'unavailable'
  if (status >= 400 && status < 500) return 'invalid'
  return undefined
}
