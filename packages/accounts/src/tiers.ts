import { z } from 'zod'
import { MAX_TIMER_SECONDS } from '@pos-relay/shared'
import type { Tier } from './contract.js'

const MiB = 1024 ** 2
const GiB = 1024 ** 3
const TiB = 1024 ** 4

/**
 * The tiers used when no tiers file is given. 0 means "relay default" for the per-circuit limits
 * and "unlimited" for the monthly quota.
 */
export const DEFAULT_TIERS: Record<string, Tier> = Object.freeze({
  free: { name: 'free', max_reservations: 2, circuit_data_limit_bytes: 256 * MiB, circuit_duration_seconds: 30 * 60, monthly_bytes: 10 * GiB },
  pro: { name: 'pro', max_reservations: 16, circuit_data_limit_bytes: 4 * GiB, circuit_duration_seconds: 60 * 60, monthly_bytes: TiB },
  unlimited: { name: 'unlimited', max_reservations: 64, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 },
})

export const TIER_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/

export const tierNameSchema = z
  .string()
  .regex(TIER_NAME, 'must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit')

const count = z.number().int('must be an integer').min(0, 'must be >= 0').max(Number.MAX_SAFE_INTEGER)

const tierBodySchema = z.strictObject({
  name: tierNameSchema.optional(),
  max_reservations: count.min(1, 'must be >= 1 (an account needs at least one reservation)'),
  circuit_data_limit_bytes: count,
  circuit_duration_seconds: count.max(MAX_TIMER_SECONDS, `must be at most ${MAX_TIMER_SECONDS} seconds (the longest timer Node.js holds, ~24.8 days); 0 = the relay's default`),
  monthly_bytes: count,
})

const tiersObjectSchema = z.record(tierNameSchema, tierBodySchema)
const tiersArraySchema = z.array(tierBodySchema.extend({ name: tierNameSchema }))
/** `{ "<name>": { max_reservations, circuit_data_limit_bytes, circuit_duration_seconds, monthly_bytes } }` or an array of tiers with `name`. */
export const tiersFileSchema = z.union([tiersObjectSchema, tiersArraySchema])

/**
 * JSON Schema (draft-07) of the object form of a tiers document, generated from the zod schema
 * above: the Helm chart's values.schema.json embeds it for `accounts.tiers`, so the chart and
 * `--tiers-file` check the same rules (the "name equals its key" rule is the chart's own check).
 */
export function tiersJsonSchema (): Record<string, unknown> {
  const { $schema: _ignored, ...schema } = z.toJSONSchema(tiersObjectSchema, { target: 'draft-7' }) as Record<string, unknown>
  return schema
}

function describe (error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
}

/**
 * A tiers document (already JSON-parsed) to tiers by name: an object keyed by tier name or an
 * array of tiers with `name`. The one definition of tiers: discovery's `--tiers-file` and the
 * relay's `auth.tiers` (and its `--tiers-file`) both use it. Issues name the offending field.
 */
export const tiersSchema = z.unknown().transform((json, ctx): Record<string, Tier> => {
  // one branch per shape, so that issues name fields rather than "no union member matched"
  const shape = Array.isArray(json) ? tiersArraySchema : typeof json === 'object' && json !== null ? tiersObjectSchema : undefined
  if (shape === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected an object keyed by tier name, or an array of tiers with "name"' })
    return z.NEVER
  }
  const parsed = shape.safeParse(json)
  if (!parsed.success) {
    for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path })
    return z.NEVER
  }
  const entries: [string, z.infer<typeof tierBodySchema>][] = Array.isArray(parsed.data)
    ? parsed.data.map((t) => [t.name, t])
    : Object.entries(parsed.data)
  const out: Record<string, Tier> = {}
  for (const [key, t] of entries) {
    if (t.name !== undefined && t.name !== key) ctx.addIssue({ code: 'custom', message: `tier "${key}" has name "${t.name}"`, path: [key, 'name'] })
    if (key in out) ctx.addIssue({ code: 'custom', message: `tier "${key}" is defined twice`, path: [key] })
    out[key] = {
      name: key,
      max_reservations: t.max_reservations,
      circuit_data_limit_bytes: t.circuit_data_limit_bytes,
      circuit_duration_seconds: t.circuit_duration_seconds,
      monthly_bytes: t.monthly_bytes,
    }
  }
  if (Object.keys(out).length === 0) ctx.addIssue({ code: 'custom', message: 'at least one tier is required' })
  return out
})

/** Validates a tiers document (already JSON-parsed), see tiersSchema. Throws an Error naming every offending field. */
export function parseTiers (json: unknown): Record<string, Tier> {
  const parsed = tiersSchema.safeParse(json)
  if (!parsed.success) throw new Error(`invalid tiers: ${describe(parsed.error)}`)
  return parsed.data
}
