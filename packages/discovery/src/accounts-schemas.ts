import { ACCOUNT_ID, ACCOUNT_NAME_MAX, MAX_QUERY_HOURS, TIER_NAME } from '@pos-relay/accounts'
import { z } from 'zod'
import { peerIdSchema } from './schemas.js'

const isoTime = z.string().meta({ format: 'date-time' })

export const accountIdSchema = z
  .string()
  .regex(ACCOUNT_ID, 'must be 1-64 characters of A-Z, a-z, 0-9, _ and -')
  .meta({ description: 'Account id', example: 'acc_3f9a1c0d5e7b2a64' })

export const accountSchema = z.object({
  id: z.string(),
  name: z.string(),
  tier: z.string(),
  disabled: z.boolean(),
  created_at: isoTime,
  key_id: z.string().meta({ description: 'Public id of the current API key (the key itself is shown only once)' }),
})

// What String.prototype.trim removes, spelled out so JS and other regex engines (generated clients,
// schemathesis) read the pattern alike.
const WS = '\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff'
export const ACCOUNT_NAME_PATTERN = `^[^${WS}](?:[\\s\\S]*[^${WS}])?$`

/** An account name: 1-ACCOUNT_NAME_MAX characters (code points, as JSON Schema counts), no leading or trailing whitespace. */
const accountNameSchema = z
  .string()
  .regex(new RegExp(ACCOUNT_NAME_PATTERN), 'must be non-empty without leading or trailing whitespace')
  .refine((s) => [...s].length <= ACCOUNT_NAME_MAX, `must be at most ${ACCOUNT_NAME_MAX} characters`)
  .meta({ example: 'Acme Corp', minLength: 1, maxLength: ACCOUNT_NAME_MAX, pattern: ACCOUNT_NAME_PATTERN })

/** POST /api/admin/accounts body; tier is one of the server's configured tiers (an enum in the document). */
export function createAccountBodySchemaFor (tiers: readonly string[]) {
  const tierNames = tiers.filter((t) => TIER_NAME.test(t))
  const [first, ...rest] = tierNames
  const tier = first === undefined
    ? z.string().regex(TIER_NAME, 'is not a tier name')
    : z.enum([first, ...rest], { error: (iss) => `unknown tier ${JSON.stringify(iss.input)} (configured: ${tierNames.join(', ')})` })
  return z.strictObject({
    name: accountNameSchema,
    tier: tier.meta({ description: 'One of the configured tiers', example: first ?? 'free' }),
  })
}

export const accountWithKeySchema = z.object({
  account: accountSchema,
  api_key: z.string().meta({ description: 'The account API key (`pra_…`). Shown once: only a hash is stored.' }),
})

export const ticketRequestSchema = z.strictObject({
  peer_id: peerIdSchema.meta({
    description: 'PeerId of the peer that will present the ticket to relays (returned in base58btc form)',
    example: '12D3KooWGTT9QsbssEwn88dneQpv7Agw8MfFvS9jvdZ3V9GrqHNh',
  }),
})

export const ticketResponseSchema = z.object({
  ticket: z.string().meta({ description: 'Compact JWS (JWT, alg EdDSA) to present to relays' }),
  expires_at: isoTime,
  account: z.string(),
  tier: z.string(),
  jti: z.string().meta({ description: 'Unique ticket id (revocable)' }),
})

export const jwksSchema = z
  .object({
    keys: z.array(
      z.object({
        kty: z.literal('OKP'),
        crv: z.literal('Ed25519'),
        x: z.string(),
        kid: z.string(),
        alg: z.literal('EdDSA'),
        use: z.literal('sig'),
      })
    ),
  })
  .meta({ description: 'JSON Web Key Set of the ticket-signing public keys (the first signs new tickets)' })

export const jtiParamsSchema = z.object({
  jti: z.string().min(1).max(256).regex(/^[A-Za-z0-9._:-]+$/, 'may only contain letters, digits and . _ : -'),
})

export const revokeResultSchema = z.object({ jti: z.string(), revoked: z.literal(true) })

const dateTime = z.iso.datetime({ offset: true })

export const usageQuerySchema = z.strictObject({
  account: accountIdSchema.optional().meta({ description: 'Only this account (default: all accounts)' }),
  from: dateTime.optional().meta({ description: `Start (ISO 8601), rounded down to the hour; default: start of the current UTC month. Must be before to, and the range at most ${MAX_QUERY_HOURS / 24} days (else 400).` }),
  to: dateTime.optional().meta({ description: `End (ISO 8601, exclusive); default: now. Must be after from, and the range at most ${MAX_QUERY_HOURS / 24} days (else 400).` }),
  format: z.enum(['json', 'csv']).default('json'),
})

export const usageRowSchema = z.object({
  account: z.string(),
  hour: isoTime.meta({ description: 'Start of the UTC hour bucket' }),
  bytes_to_destination: z.number(),
  bytes_to_source: z.number(),
  circuits: z.number(),
  circuit_seconds: z.number(),
  reservation_seconds: z.number(),
})
