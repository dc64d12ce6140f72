/**
 * What one reconcile of a pool asks of the work queue: nothing (the informers
 * bring the next change), or another look after a delay, with the reason
 * (logged, and readable in tests). Errors are thrown instead: they retry with
 * growing backoff.
 */
export interface ReconcileResult {
  /** reconcile again after this long, without growing backoff */
  requeueAfterMs?: number
  /** CamelCase, why the reconcile ended this way */
  reason: string
}

/** a Secret the pool names is missing or unreadable: shown in Degraded, looked at again soon */
export const SECRET_RETRY_MS = 5_000
/** the finalizer list moved under a JSON patch: retry at once with a fresh cache */
export const FINALIZER_RETRY_MS = 100

export function done (reason: string): ReconcileResult {
  return { reason }
}

export function requeueAfter (ms: number, reason: string): ReconcileResult {
  return { requeueAfterMs: ms, reason }
}
