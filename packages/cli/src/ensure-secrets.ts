/**
 * Creates the accounts Secrets (ticket signing keys, admin secret) in the cluster when they are
 * absent, and rotates the ticket keys when asked to, so that Helm never renders key material.
 * The chart runs this as a pre-install/pre-upgrade hook (`pos-relay keys ensure-secrets`).
 *
 * Race-free against concurrent runs: creation is create-if-absent (409 = another run won: read
 * theirs), updates replace with the resourceVersion read (409 = re-read and decide again).
 */
import { createHash, randomBytes } from 'node:crypto'
import { generateTicketKey, parseTicketKeys, type TicketKey } from '@pos-relay/accounts'

export const TICKET_KEYS_KEY = 'ticket-keys.json'
export const ADMIN_SECRET_KEY = 'admin-secret'
export const GENERATION_ANNOTATION = 'pos-relay.io/ticket-keys-generation'
/** JSON {kid: ISO time}: when each key stopped signing; a key is dropped `retireAfterSeconds` later */
export const SUPERSEDED_ANNOTATION = 'pos-relay.io/ticket-keys-superseded'
/** on discovery's pod template: a hash of the published kids, so a changed key set rolls discovery */
export const ROLLOUT_ANNOTATION = 'pos-relay.io/ticket-kids'

export interface SecretObject {
  metadata: { name: string, namespace?: string, resourceVersion?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
  type?: string
  data?: Record<string, string>
}

/** The few Kubernetes calls this needs (a real implementation wraps @kubernetes/client-node). */
export interface SecretsApi {
  /** undefined when absent */
  read: (name: string) => Promise<SecretObject | undefined>
  /** 'exists' on 409 */
  create: (secret: SecretObject) => Promise<'created' | 'exists'>
  /** 'conflict' on 409 (resourceVersion changed) */
  replace: (secret: SecretObject) => Promise<'replaced' | 'conflict'>
  /** merge-patches annotations onto a Deployment's pod template; false when it does not exist */
  annotatePodTemplate: (deployment: string, annotations: Record<string, string>) => Promise<boolean>
}

export interface EnsureOptions {
  ticketKeysSecret?: string
  adminSecret?: string
  /** raise to rotate: a new signing key is prepended, the old ones stay published */
  generation: number
  /** a superseded key is dropped this long after it stopped signing (longer than any ticket lives) */
  retireAfterSeconds: number
  /** the Deployment to roll (pod template annotation) when the published key set changed */
  rolloutDeployment?: string
  labels?: Record<string, string>
  now?: () => Date
  /** one JSON object per line; never key material */
  log?: (event: Record<string, unknown>) => void
}

const MAX_ATTEMPTS = 8

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8')

/** 16 hex characters of sha256 over the kids in order (which key signs matters too) */
export function kidsHash (kids: string[]): string {
  return createHash('sha256').update(kids.join(',')).digest('hex').slice(0, 16)
}

function readKeys (secret: SecretObject): TicketKey[] {
  const text = unb64(secret.data?.[TICKET_KEYS_KEY])
  let json: unknown
  try { json = JSON.parse(text) } catch { throw new Error(`Secret ${secret.metadata.name}: key ${TICKET_KEYS_KEY} is not valid JSON (not overwritten; fix or delete the Secret)`) }
  try { return parseTicketKeys(json) } catch (err: any) { throw new Error(`Secret ${secret.metadata.name}: key ${TICKET_KEYS_KEY}: ${err.message} (not overwritten; fix or delete the Secret)`) }
}

function readSuperseded (secret: SecretObject): Record<string, string> {
  const raw = secret.metadata.annotations?.[SUPERSEDED_ANNOTATION]
  if (raw == null) return {}
  try {
    const parsed = JSON.parse(raw)
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed : {}
  } catch { return {} }
}

export interface KeysDecision {
  keys: TicketKey[]
  superseded: Record<string, string>
  generation: number
  added?: string
  retired: string[]
}

/**
 * What the key set should become (pure): a new key in front when `generation` is above the stored
 * one; superseded keys dropped once `retireAfterSeconds` have passed. Keys without a superseded
 * time (added by hand) are kept; a lower generation than stored changes nothing (never go back).
 */
export function decideKeys (current: TicketKey[], superseded: Record<string, string>, storedGeneration: number,
  wanted: number, retireAfterSeconds: number, now: Date, newKey: () => TicketKey): KeysDecision {
  let keys = [...current]
  const marks = { ...superseded }
  let added: string | undefined
  let generation = storedGeneration
  if (wanted > storedGeneration) {
    const key = newKey()
    marks[keys[0]!.kid] = now.toISOString()
    keys = [key, ...keys]
    added = key.kid
    generation = wanted
  }
  const retired: string[] = []
  keys = keys.filter((k, i) => {
    const at = Date.parse(marks[k.kid] ?? '')
    if (i === 0 || Number.isNaN(at) || now.getTime() - at < retireAfterSeconds * 1000) return true
    retired.push(k.kid)
    return false
  })
  for (const kid of Object.keys(marks)) if (!keys.some((k) => k.kid === kid)) delete marks[kid]
  return { keys, superseded: marks, generation, ...(added != null ? { added } : {}), retired }
}

function keysSecret (name: string, keys: TicketKey[], generation: number, superseded: Record<string, string>, labels: Record<string, string>, resourceVersion?: string): SecretObject {
  return {
    metadata: {
      name,
      labels,
      annotations: { [GENERATION_ANNOTATION]: String(generation), [SUPERSEDED_ANNOTATION]: JSON.stringify(superseded) },
      ...(resourceVersion != null ? { resourceVersion } : {})
    },
    type: 'Opaque',
    data: { [TICKET_KEYS_KEY]: b64(JSON.stringify(keys, null, 2) + '\n') }
  }
}

/** Ensures the ticket keys Secret; returns the published kids (signing key first) and whether they changed. */
async function ensureTicketKeys (api: SecretsApi, name: string, opts: EnsureOptions): Promise<{ kids: string[], changed: boolean }> {
  const now = opts.now ?? (() => new Date())
  const log = opts.log ?? (() => {})
  const labels = opts.labels ?? {}
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const existing = await api.read(name)
    if (existing == null) {
      const key = await generateTicketKey()
      const generation = Math.max(1, opts.generation)
      if (await api.create(keysSecret(name, [key], generation, {}, labels)) === 'created') {
        log({ event: 'secret_created', secret: name, kids: [key.kid], generation })
        return { kids: [key.kid], changed: true }
      }
      log({ event: 'secret_create_conflict', secret: name }) // another run created it first: use theirs
      continue
    }
    const current = readKeys(existing)
    const stored = Number(existing.metadata.annotations?.[GENERATION_ANNOTATION] ?? '1')
    const storedGeneration = Number.isInteger(stored) && stored >= 1 ? stored : 1
    const fresh = await generateTicketKey() // made up front: decideKeys is synchronous
    const d = decideKeys(current, readSuperseded(existing), storedGeneration, opts.generation, opts.retireAfterSeconds, now(), () => fresh)
    if (opts.generation < storedGeneration) log({ event: 'generation_behind', secret: name, stored: storedGeneration, wanted: opts.generation })
    if (d.added == null && d.retired.length === 0) {
      log({ event: 'secret_unchanged', secret: name, kids: current.map((k) => k.kid), generation: storedGeneration })
      return { kids: current.map((k) => k.kid), changed: false }
    }
    const next = keysSecret(name, d.keys, d.generation, d.superseded, { ...(existing.metadata.labels ?? {}), ...labels }, existing.metadata.resourceVersion)
    next.metadata.annotations = { ...(existing.metadata.annotations ?? {}), ...next.metadata.annotations }
    if (await api.replace(next) === 'replaced') {
      log({ event: 'secret_updated', secret: name, kids: d.keys.map((k) => k.kid), generation: d.generation, ...(d.added != null ? { added: d.added } : {}), retired: d.retired })
      return { kids: d.keys.map((k) => k.kid), changed: true }
    }
    log({ event: 'secret_update_conflict', secret: name }) // changed under us: read again
  }
  throw new Error(`Secret ${name}: gave up after ${MAX_ATTEMPTS} conflicting attempts`)
}

async function ensureAdminSecret (api: SecretsApi, name: string, opts: EnsureOptions): Promise<void> {
  const log = opts.log ?? (() => {})
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const existing = await api.read(name)
    if (existing != null) {
      if (unb64(existing.data?.[ADMIN_SECRET_KEY]).trim() === '') throw new Error(`Secret ${name} has no ${ADMIN_SECRET_KEY} (not overwritten; fix or delete the Secret)`)
      log({ event: 'secret_unchanged', secret: name })
      return
    }
    const secret = randomBytes(32).toString('base64url')
    const created = await api.create({ metadata: { name, labels: opts.labels ?? {} }, type: 'Opaque', data: { [ADMIN_SECRET_KEY]: b64(secret) } })
    if (created === 'created') { log({ event: 'secret_created', secret: name }); return }
    log({ event: 'secret_create_conflict', secret: name })
  }
  throw new Error(`Secret ${name}: gave up after ${MAX_ATTEMPTS} conflicting attempts`)
}

export async function ensureAccountSecrets (api: SecretsApi, opts: EnsureOptions): Promise<{ kids?: string[] }> {
  if (!Number.isInteger(opts.generation) || opts.generation < 1) throw new Error('generation must be an integer >= 1')
  if (opts.adminSecret != null) await ensureAdminSecret(api, opts.adminSecret, opts)
  if (opts.ticketKeysSecret == null) return {}
  const { kids, changed } = await ensureTicketKeys(api, opts.ticketKeysSecret, opts)
  if (changed && opts.rolloutDeployment != null) {
    // discovery reads its keys at start: a changed set (rotation, retirement) needs new pods
    const rolled = await api.annotatePodTemplate(opts.rolloutDeployment, { [ROLLOUT_ANNOTATION]: kidsHash(kids) })
    opts.log?.({ event: rolled ? 'rollout_requested' : 'rollout_skipped', deployment: opts.rolloutDeployment, ...(rolled ? {} : { reason: 'not found (first install)' }) })
  }
  return { kids }
}
