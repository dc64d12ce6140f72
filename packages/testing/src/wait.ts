import { setTimeout as sleep } from 'node:timers/promises'

export interface WaitForOptions {
  /** default 5000 */
  timeoutMs?: number
  /** default 50 */
  intervalMs?: number
  /** prefix of the error thrown on timeout */
  message?: string
}

/**
 * Polls `predicate` until it returns true. A throwing predicate counts as "not yet";
 * its last error is attached as the timeout error's cause.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs = 5000, intervalMs = 50, message = 'condition not met' }: WaitForOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      if (await predicate()) return
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      throw new Error(`waitFor timed out after ${timeoutMs} ms: ${message}`, { cause: lastError })
    }
    await sleep(intervalMs)
  }
}
