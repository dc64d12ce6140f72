import type { DeregistrationProof, RelayStore } from '@pos-relay/discovery'
import type { RegistrationProof, SignedOperation } from '@pos-relay/shared'

/**
 * Signs a registration or deletion with the relay's own key (from its slot's identity Secret);
 * undefined when the key is not at hand (then the operation goes unsigned, which the store
 * refuses for an entry registered signed). `signed_at` is given, strictly increasing.
 */
export type SignRegistration = (op: SignedOperation, fields: { id: string, peer_id: string, addrs: string[], signed_at: number }) => Promise<RegistrationProof | undefined>

/** The registry's proofs: each signed_at is wall clock (discovery compares it with its own) and strictly increasing. */
export class RegistrySigner {
  private lastSignedAt = 0

  constructor (private readonly sign?: SignRegistration) {}

  async proof (op: SignedOperation, id: string, peerId: string, addrs: string[]): Promise<RegistrationProof | undefined> {
    if (this.sign == null) return undefined
    this.lastSignedAt = Math.max(Date.now(), this.lastSignedAt + 1)
    return await this.sign(op, { id, peer_id: peerId, addrs, signed_at: this.lastSignedAt })
  }

  /** a signed deletion of `id` when the key of its peer (known, or read from the store) is at hand */
  async deletionProof (store: RelayStore, id: string, peerId?: string): Promise<DeregistrationProof | undefined> {
    if (this.sign == null) return undefined
    const owner = peerId ?? (await store.get(id))?.peer_id
    if (owner == null) return undefined
    const proof = await this.proof('delete', id, owner, [])
    return proof == null ? undefined : { peer_id: owner, addrs: [], ...proof }
  }
}
