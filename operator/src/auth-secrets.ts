/**
 * Checks the Secrets and the tiers ConfigMap a pool's spec.auth names before
 * any relay is created or changed for that spec: a relay started with a
 * missing Secret would never start (the kubelet waits for it), one holding a
 * private ticket key would put the signing key on every node, and one given
 * tiers it cannot parse would exit at start on every node. The pure checks
 * are separate from the reading (checkPublicJwks, checkTiers).
 */
import { parseTiers, TicketVerifier } from '@pos-relay/accounts'
import { corePath, REDIS_URL_KEY, TICKET_KEYS_KEY, TIERS_KEY, type ConfigMap, type RelayPool, type Secret } from './api.js'
import { isNotFound, type KubeClient } from './kube.js'

/**
 * Why `text` is not a public JWKS the relays accept, or undefined when it is.
 * A key with "d" is a private key: refused even though a relay would refuse
 * it too, so the operator never mounts it into a pod. Otherwise the relay's
 * own verifier decides (Ed25519 public keys with a kid), so both agree.
 */
export function checkPublicJwks (text: string): string | undefined {
  let json: unknown
  try { json = JSON.parse(text) } catch { return 'is not JSON' }
  if (Array.isArray(json)) return 'is a JSON array (a signing keys file, as discovery takes it): relays take a public JWKS {"keys": [...]}, as `pos-relay keys public --in <keys file>` prints it'
  const keys = (json as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) return 'is not a JWKS with at least one key ({"keys": [...]}, as `pos-relay keys public` prints it)'
  const priv = keys.findIndex((k) => k != null && typeof k === 'object' && 'd' in k)
  if (priv !== -1) return `holds a private key (keys[${priv}] has "d"): relays take public keys only; \`pos-relay keys public --in <keys file>\` prints them`
  try {
    // eslint-disable-next-line no-new -- constructing it is the check
    new TicketVerifier({ jwks: { keys } })
  } catch (err: any) {
    return `is not usable by the relays: ${err.message}`
  }
  return undefined
}

/**
 * Why `text` is not a tiers document the relays accept (the format of
 * `pos-relay discovery --tiers-file`), or undefined when it is: the relay's
 * own parser decides, so both agree.
 */
export function checkTiers (text: string): string | undefined {
  let json: unknown
  try { json = JSON.parse(text) } catch { return 'is not JSON' }
  try {
    parseTiers(json)
  } catch (err: any) {
    return `is not a valid tiers document: ${err.message}`
  }
  return undefined
}

export class AuthSecrets {
  constructor (private readonly client: KubeClient) {}

  /**
   * Why the pool's spec.auth cannot be applied now, or undefined. Read on
   * every reconcile (no cache): a fixed Secret should let the pool proceed
   * at the next look, and a broken one stop it before a pod is changed.
   */
  async problem (pool: RelayPool): Promise<string | undefined> {
    const auth = pool.spec?.auth
    if (auth?.required !== true) return undefined
    const ns = pool.metadata.namespace ?? 'default'
    const read = async (name: string, key: string, what: string): Promise<{ value?: string, problem?: string }> => {
      try {
        const s = await this.client.get<Secret>(`${corePath('secrets', ns)}/${name}`)
        const raw = s.data?.[key]
        if (raw == null) return { problem: `${what}: Secret ${ns}/${name} has no key ${key}` }
        return { value: Buffer.from(raw, 'base64').toString('utf8') }
      } catch (err: any) {
        return { problem: isNotFound(err) ? `${what}: Secret ${ns}/${name} not found` : `${what}: cannot read Secret ${ns}/${name}: ${err.message}` }
      }
    }
    if (auth.redisSecretRef != null) {
      const r = await read(auth.redisSecretRef.name, auth.redisSecretRef.key ?? REDIS_URL_KEY, 'spec.auth.redisSecretRef')
      if (r.problem != null) return r.problem
    }
    const keys = auth.ticketKeysSecretRef
    if (keys != null) {
      const key = keys.key ?? TICKET_KEYS_KEY
      const r = await read(keys.name, key, 'spec.auth.ticketKeysSecretRef')
      if (r.problem != null) return r.problem
      const bad = checkPublicJwks(r.value!)
      if (bad != null) return `spec.auth.ticketKeysSecretRef: Secret ${ns}/${keys.name} key ${key} ${bad}`
    }
    const tiers = auth.tiersConfigMapRef
    if (tiers != null) {
      const key = tiers.key ?? TIERS_KEY
      const where = `spec.auth.tiersConfigMapRef: ConfigMap ${ns}/${tiers.name}`
      let text: string | undefined
      try {
        text = (await this.client.get<ConfigMap>(`${corePath('configmaps', ns)}/${tiers.name}`)).data?.[key]
      } catch (err: any) {
        return isNotFound(err) ? `${where} not found` : `${where}: cannot read it: ${err.message}`
      }
      if (text == null) return `${where} has no key ${key}`
      const bad = checkTiers(text)
      if (bad != null) return `${where} key ${key} ${bad}`
    }
    return undefined
  }
}
