/**
 * Creates the registry Secrets the chart used to render with `randAlphaNum` + `lookup` (which
 * changed under GitOps tools that render without a cluster): the bundled Redis's password and the
 * discovery Secret (`p2p-secret`, `api-url`, `redis-url`) that discovery and every RelayPool read.
 * Key material (the p2p secret, the password) is generated here once and kept; the derived keys
 * (`api-url`, `redis-url`) are set from the flags on every run, so a changed value (Service port,
 * external Redis URL) reaches the Secret at the next `helm upgrade`.
 *
 * Upgrades from a chart that rendered these Secrets: Helm would delete them after the upgrade
 * (they left the release's manifest). A Secret that carries Helm's release annotation gets
 * `helm.sh/resource-policy: keep`, which Helm honours on the live object, so it stays (with its
 * p2p secret and password) and from then on belongs to this hook, like the accounts Secrets.
 *
 * Race-free as ensure-secrets.ts: create-if-absent (409 = read theirs), replace with the
 * resourceVersion read (409 = read again).
 */
import { randomInt } from 'node:crypto'
// the discovery Secret's keys are the operator's contract (spec.discovery.p2pSecretRef's defaults); its api
// module holds only constants and types, so the CLI's start-up does not load the operator
import { API_URL_KEY, P2P_SECRET_KEY, REDIS_URL_KEY } from '@pos-relay/operator/api'
import type { SecretObject, SecretsApi } from './ensure-secrets.js'

export { API_URL_KEY, P2P_SECRET_KEY, REDIS_URL_KEY }
export const REDIS_PASSWORD_KEY = 'password'
export const HELM_RELEASE_ANNOTATION = 'meta.helm.sh/release-name'
export const RESOURCE_POLICY_ANNOTATION = 'helm.sh/resource-policy'

const MAX_ATTEMPTS = 8
const ALPHANUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64')
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8')

/** `length` characters of [A-Za-z0-9] from the CSPRNG (as the chart's randAlphaNum made them) */
export function randomAlphaNum (length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += ALPHANUM[randomInt(ALPHANUM.length)]
  return out
}

export interface RegistrySecretsOptions {
  /** the discovery Secret to create or update (keys p2p-secret, api-url, redis-url) */
  discoverySecret?: string
  /** its api-url (the discovery Service's in-cluster URL) */
  apiUrl?: string
  /** the Secret with the bundled Redis's password (key `password`) */
  redisSecret?: string
  /** false: redisSecret is the user's (redis.existingSecret): read it, never create it */
  createRedisSecret?: boolean
  /** host:port of the bundled Redis: redis-url = redis://:<password>@<redisHost> */
  redisHost?: string
  /** an external Redis URL (when there is no bundled Redis) */
  redisUrl?: string
  labels?: Record<string, string>
  /** one JSON object per line; never key material */
  log?: (event: Record<string, unknown>) => void
}

/** Adds `helm.sh/resource-policy: keep` to a Secret an older chart rendered; true when it did. */
function adopt (secret: SecretObject): boolean {
  const a = secret.metadata.annotations ?? {}
  if (a[HELM_RELEASE_ANNOTATION] == null || a[RESOURCE_POLICY_ANNOTATION] === 'keep') return false
  secret.metadata.annotations = { ...a, [RESOURCE_POLICY_ANNOTATION]: 'keep' }
  return true
}

/** The Redis password: read (existing or created earlier), else created. */
async function ensureRedisPassword (api: SecretsApi, name: string, create: boolean, opts: RegistrySecretsOptions): Promise<string> {
  const log = opts.log ?? (() => {})
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const existing = await api.read(name)
    if (existing != null) {
      const password = unb64(existing.data?.[REDIS_PASSWORD_KEY])
      if (password === '') throw new Error(`Secret ${name} has no ${REDIS_PASSWORD_KEY} (not overwritten; fix or delete the Secret)`)
      if (create && adopt(existing)) {
        if (await api.replace(existing) === 'conflict') { log({ event: 'secret_update_conflict', secret: name }); continue }
        log({ event: 'secret_adopted', secret: name })
      } else log({ event: 'secret_unchanged', secret: name })
      return password
    }
    if (!create) throw new Error(`Secret ${name} (redis.existingSecret) does not exist: create it with key ${REDIS_PASSWORD_KEY}`)
    const password = randomAlphaNum(32)
    if (await api.create({ metadata: { name, labels: opts.labels ?? {} }, type: 'Opaque', data: { [REDIS_PASSWORD_KEY]: b64(password) } }) === 'created') {
      log({ event: 'secret_created', secret: name })
      return password
    }
    log({ event: 'secret_create_conflict', secret: name })
  }
  throw new Error(`Secret ${name}: gave up after ${MAX_ATTEMPTS} conflicting attempts`)
}

async function ensureDiscoverySecret (api: SecretsApi, name: string, derived: Record<string, string>, opts: RegistrySecretsOptions): Promise<void> {
  const log = opts.log ?? (() => {})
  const wanted = Object.fromEntries(Object.entries(derived).map(([k, v]) => [k, b64(v)]))
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const existing = await api.read(name)
    if (existing == null) {
      const created = await api.create({ metadata: { name, labels: opts.labels ?? {} }, type: 'Opaque', data: { [P2P_SECRET_KEY]: b64(randomAlphaNum(48)), ...wanted } })
      if (created === 'created') { log({ event: 'secret_created', secret: name }); return }
      log({ event: 'secret_create_conflict', secret: name })
      continue
    }
    if (unb64(existing.data?.[P2P_SECRET_KEY]).trim() === '') throw new Error(`Secret ${name} has no ${P2P_SECRET_KEY} (not overwritten; fix or delete the Secret)`)
    const changedKeys = Object.keys(wanted).filter((k) => existing.data?.[k] !== wanted[k])
    const adopted = adopt(existing)
    if (changedKeys.length === 0 && !adopted) { log({ event: 'secret_unchanged', secret: name }); return }
    existing.data = { ...existing.data, ...wanted }
    if (await api.replace(existing) === 'replaced') {
      log({ event: 'secret_updated', secret: name, keys: changedKeys, ...(adopted ? { adopted: true } : {}) })
      return
    }
    log({ event: 'secret_update_conflict', secret: name })
  }
  throw new Error(`Secret ${name}: gave up after ${MAX_ATTEMPTS} conflicting attempts`)
}

export async function ensureRegistrySecrets (api: SecretsApi, opts: RegistrySecretsOptions): Promise<void> {
  let redisUrl = opts.redisUrl
  if (opts.redisSecret != null) {
    const password = await ensureRedisPassword(api, opts.redisSecret, opts.createRedisSecret ?? true, opts)
    if (opts.redisHost != null) redisUrl = `redis://:${encodeURIComponent(password)}@${opts.redisHost}`
  }
  if (opts.discoverySecret == null) return
  if (opts.apiUrl == null || redisUrl == null) throw new Error('the discovery Secret needs --api-url and a Redis (--redis-secret with --redis-host, or POS_RELAY_REDIS_URL)')
  await ensureDiscoverySecret(api, opts.discoverySecret, { [API_URL_KEY]: opts.apiUrl, [REDIS_URL_KEY]: redisUrl }, opts)
}
