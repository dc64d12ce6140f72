/**
 * Relay private keys by peer id, read from identity Secrets (a peer id's key
 * never changes, so a found key is cached).
 */
import type { PrivateKey } from '@libp2p/interface'
import { ANNOTATIONS, CONFIG_KEY, type Secret } from './api.js'
import { keyOfIdentityConfig } from './identity.js'

export class RelayKeys {
  private readonly keys = new Map<string, PrivateKey>()

  constructor (private readonly secrets: () => Secret[]) {}

  /** the private key of relay `peerId` from its identity Secret, if one is known */
  get (peerId: string): PrivateKey | undefined {
    const cached = this.keys.get(peerId)
    if (cached != null) return cached
    for (const s of this.secrets()) {
      if (s.metadata.annotations?.[ANNOTATIONS.peerId] !== peerId) continue
      const key = keyOfIdentityConfig(s.data?.[CONFIG_KEY], peerId)
      if (key == null) continue
      // bounded: relays come and go over the operator's lifetime
      if (this.keys.size >= 10_000) this.keys.clear()
      this.keys.set(peerId, key)
      return key
    }
    return undefined
  }
}
