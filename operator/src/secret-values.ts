/**
 * Values the operator reads from Secrets named in a pool's spec (today: the
 * registry's Redis URL), cached briefly so a reconcile storm does not become a
 * Secret-read storm.
 */
import { corePath, REDIS_URL_KEY, type RelayPool, type Secret } from './api.js'
import { isNotFound, type KubeClient } from './kube.js'

export class SecretValues {
  private readonly values = new Map<string, { value?: string, error?: string, at: number }>()

  constructor (private readonly client: KubeClient, private readonly defaultUrl: string | undefined) {}

  /**
   * The pool's Redis URL: from its Secret (cached 30 s), else the operator's
   * default. A Secret that cannot be read or has disappeared does not take the
   * fleet out of discovery: the last known URL stays in use (reported in
   * Degraded) until the Secret is fixed.
   */
  async redisUrl (pool: RelayPool): Promise<{ url?: string, error?: string }> {
    const ref = pool.spec?.discovery?.redisUrlSecretRef
    if (ref?.name == null) {
      return this.defaultUrl != null ? { url: this.defaultUrl } : { error: 'spec.discovery.redisUrlSecretRef is not set and the operator has no --redis default' }
    }
    const ns = pool.metadata.namespace ?? 'default'
    const k = ref.key ?? REDIS_URL_KEY
    const cacheKey = `${ns}/${ref.name}/${k}`
    const hit = this.values.get(cacheKey)
    // a good answer is cached 30 s, a problem is looked at again after 2 s
    if (hit != null && Date.now() - hit.at < (hit.error == null ? 30_000 : 2_000)) return { ...(hit.value != null ? { url: hit.value } : {}), ...(hit.error != null ? { error: hit.error } : {}) }
    let value: string | undefined
    let error: string | undefined
    try {
      const s = await this.client.get<Secret>(`${corePath('secrets', ns)}/${ref.name}`)
      const raw = s.data?.[k]
      value = raw != null ? Buffer.from(raw, 'base64').toString('utf8').trim() : undefined
      if (value === '') value = undefined
      if (value == null) error = `Secret ${ns}/${ref.name} has no key ${k}`
    } catch (err: any) {
      error = isNotFound(err) ? `Secret ${ns}/${ref.name} not found` : `cannot read Secret ${ns}/${ref.name}: ${err.message}`
    }
    if (value == null && hit?.value != null) {
      value = hit.value
      error = `${error ?? 'no Redis URL'}; still using the last known Redis URL`
    }
    this.values.set(cacheKey, { ...(value != null ? { value } : {}), ...(error != null ? { error } : {}), at: Date.now() })
    return { ...(value != null ? { url: value } : {}), ...(error != null ? { error } : {}) }
  }
}
