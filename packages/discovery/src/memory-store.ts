import { MAX_SIGNATURE_SKEW_MS } from '@pos-relay/shared'
import { assertTtl, byId, foreignKeyError, NotListedError, pickRegistration, RegistrationConflictError, replayError, skewError, unsignedError, verifyProof, type RelayRecord, type RelayStore } from './types.js'

interface Entry {
  record: RelayRecord
  expiresAt: number
}

/** The last signed_at accepted for an id, kept after its entry is gone (as the Redis store's tombstone key). */
interface Tombstone {
  signedAt: number
  expiresAt: number
}

/** In-process store for tests and single-node development. Expired entries are dropped lazily on read. */
export function createMemoryStore (opts: { now?: () => number } = {}): RelayStore {
  const now = opts.now ?? Date.now
  const entries = new Map<string, Entry>()
  const tombstones = new Map<string, Tombstone>()
  const lastSigned = (id: string, t: number): number | undefined => {
    const tomb = tombstones.get(id)
    if (tomb && tomb.expiresAt <= t) tombstones.delete(id)
    return tomb && tomb.expiresAt > t ? tomb.signedAt : undefined
  }

  const live = (id: string, t: number): Entry | undefined => {
    const entry = entries.get(id)
    if (entry && entry.expiresAt <= t) {
      entries.delete(id)
      return undefined
    }
    return entry
  }

  return {
    // Same rules, same order, as the Redis scripts; nothing awaits between the checks and the write.
    async register (reg, ttlMs, proof, opts) {
      assertTtl(ttlMs)
      const refreshOnly = opts?.refreshOnly === true
      if (proof) await verifyProof({ op: refreshOnly ? 'refresh' : 'register', ...pickRegistration(reg), signed_at: proof.signed_at }, proof.signature)
      const t = now()
      if (proof && Math.abs(proof.signed_at - t) > MAX_SIGNATURE_SKEW_MS) throw skewError(proof.signed_at, t)
      const expiresAt = t + ttlMs
      const prev = live(reg.id, t)
      if (!prev && refreshOnly) throw new NotListedError(reg.id)
      if (prev && prev.record.peer_id !== reg.peer_id) throw new RegistrationConflictError(reg.id, prev.record.peer_id)
      const last = prev ? prev.record.signed_at : lastSigned(reg.id, t)
      if (last !== undefined) {
        if (!proof) throw unsignedError(reg.id, 'register')
        if (proof.signed_at <= last) throw replayError(reg.id, proof.signed_at, last)
      }
      const record: RelayRecord = {
        ...pickRegistration(reg),
        ...(proof ? { signed_at: proof.signed_at } : {}),
        registered_at: prev?.record.registered_at ?? new Date(t).toISOString(),
        updated_at: new Date(t).toISOString(),
        expires_at: new Date(expiresAt).toISOString(),
      }
      entries.set(reg.id, { record, expiresAt })
      if (proof) tombstones.set(reg.id, { signedAt: proof.signed_at, expiresAt: expiresAt + 2 * MAX_SIGNATURE_SKEW_MS })
      return structuredClone(record)
    },
    async deregister (id, proof) {
      if (proof) await verifyProof({ op: 'delete', id, peer_id: proof.peer_id, addrs: proof.addrs, signed_at: proof.signed_at }, proof.signature)
      const t = now()
      if (proof && Math.abs(proof.signed_at - t) > MAX_SIGNATURE_SKEW_MS) throw skewError(proof.signed_at, t)
      const prev = live(id, t)
      if (prev && proof && prev.record.peer_id !== proof.peer_id) throw foreignKeyError(id, proof.peer_id, prev.record.peer_id)
      const last = prev?.record.signed_at
      if (last !== undefined) {
        if (!proof) throw unsignedError(id, 'delete')
        if (proof.signed_at <= last) throw replayError(id, proof.signed_at, last)
      }
      const existed = prev !== undefined
      entries.delete(id)
      if (proof && existed) tombstones.set(id, { signedAt: proof.signed_at, expiresAt: t + 2 * MAX_SIGNATURE_SKEW_MS })
      return existed
    },
    async list () {
      const t = now()
      return [...entries.keys()]
        .flatMap((id) => {
          const entry = live(id, t)
          return entry ? [structuredClone(entry.record)] : []
        })
        .sort(byId)
    },
    async get (id) {
      const entry = live(id, now())
      return entry && structuredClone(entry.record)
    },
    async ping () {},
    async close () {
      entries.clear()
      tombstones.clear()
    },
  }
}
