import type { Logger } from '@pos-relay/shared'
import type { OperatorMetrics } from './metrics.js'
import type { ReconcileResult } from './reconcile-result.js'
import type { WorkQueue } from './workqueue.js'

export interface WorkerDeps {
  /** the controller label of the metrics */
  controller: string
  reconcile: (key: string) => Promise<ReconcileResult>
  metrics: OperatorMetrics
  log: Logger
  /** after a failed reconcile, which is retried with backoff */
  onError: (key: string, err: any) => void
}

/**
 * One worker (controller-runtime's processNextWorkItem loop): takes keys until the queue shuts
 * down; a result with requeueAfterMs is looked at again then, an error is retried rate-limited.
 */
export async function runWorker (queue: WorkQueue, { controller, reconcile, metrics, log, onError }: WorkerDeps): Promise<void> {
  for (;;) {
    const key = await queue.get()
    if (key == null) return
    const end = metrics.reconcileTime.startTimer({ controller })
    try {
      const result = await reconcile(key)
      queue.forget(key)
      if (result.requeueAfterMs != null) {
        queue.addAfter(key, result.requeueAfterMs)
        log.debug({ event: 'reconcile_requeue', pool: key, after_ms: result.requeueAfterMs, reason: result.reason }, 'reconciled; looking again later')
        metrics.reconcileTotal.inc({ controller, result: 'requeue_after' })
      } else {
        metrics.reconcileTotal.inc({ controller, result: 'success' })
      }
    } catch (err: any) {
      metrics.reconcileTotal.inc({ controller, result: 'error' })
      metrics.reconcileErrors.inc({ controller })
      const delay = queue.addRateLimited(key)
      log.warn({ event: 'reconcile_error', pool: key, err: err?.message, retry_in_ms: delay }, 'reconcile failed; retrying with backoff')
      onError(key, err)
    } finally {
      end()
      queue.done(key)
    }
  }
}
