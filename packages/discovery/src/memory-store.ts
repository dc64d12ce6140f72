import { assertTtl, byId, pickRegistration, RegistrationConflictError, type RelayRecord, type RelayStore } from './types.js'

interface Entry {
  record: RelayRecord
  expiresAt: number
}

/** In-process store for tests and single-node development. Expired entries are dropped lazily on read. */
export function createMemoryStore(opts: { now?: () => number } = {}): RelayStore {
  const now = opts.now ?? Date.now
  const entries = new Map<string, Entry>()

  const live = (id: string, t: number): Entry | undefined => {
    const entry = entries.get(id)
    if (entry && entry.expiresAt <= t) {
      entries.delete(id)
      return undefined
    }
    return entry
  }

  return {
    async register(reg, ttlMs) {
      assertTtl(ttlMs)
      const t = now()
      const expiresAt = t + ttlMs
      const prev = live(reg.id, t)
      if (prev && prev.record.peer_id !== reg.peer_id) throw new RegistrationConflictError(reg.id, prev.record.peer_id)
      const record: RelayRecord = {
        ...pickRegistration(reg),
        registered_at: prev?.record.registered_at ?? new Date(t).toISOString(),
        updated_at: new Date(t).toISOString(),
        expires_at: new Date(expiresAt).toISOString(),
      }
      entries.set(reg.id, { record, expiresAt })
      return structuredClone(record)
    },
    async deregister(id) {
      const existed = live(id, now()) !== undefined
      entries.delete(id)
      return existed
    },
    async list() {
      const t = now()
      return [...entries.keys()]
        .flatMap((id) => {
          const entry = live(id, t)
          return entry ? [structuredClone(entry.record)] : []
        })
        .sort(byId)
    },
    async get(id) {
      const entry = live(id, now())
      return entry && structuredClone(entry.record)
    },
    async ping() {},
    async close() {
      entries.clear()
    },
  }
}
