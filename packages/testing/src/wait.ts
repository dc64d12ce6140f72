import { setTimeout as sleep } from 'node:timers/promises'

export interface PollOptions {
  /** default 5000 */
  timeoutMs?: number
  /** default 50 */
  intervalMs?: number
  /** the state to show in the timeout error (e.g. the object's status), read once at the timeout */
  describe?: () => string | Promise<string>
  /** checked before each try: a reason (the process being waited on exited) stops the wait at once, as the error */
  giveUp?: () => string | undefined
}

/**
 * The one poll helper of the tests, benches and labs: calls `fn` every `intervalMs` until it
 * returns something other than `undefined` or `false`, and returns that. A throwing `fn` counts as
 * "not yet"; at the timeout the error names `what`, the last error (also as `cause`) and `describe()`.
 */
export async function pollUntil<T> (
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  { timeoutMs = 5000, intervalMs = 50, describe, giveUp }: PollOptions = {}
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    const reason = giveUp?.()
    if (reason != null) throw new Error(reason, { cause: lastError })
    try {
      const value = await fn()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      const state = describe == null ? '' : await Promise.resolve().then(describe).catch((err) => `(could not read the state: ${String(err)})`)
      const last = lastError != null ? `: ${String((lastError as Error).message ?? lastError)}` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}${state !== '' ? `\n${state}` : ''}`, { cause: lastError })
    }
    await sleep(intervalMs)
  }
}

export interface WaitForOptions {
  /** default 5000 */
  timeoutMs?: number
  /** default 50 */
  intervalMs?: number
  /** what is awaited, for the error thrown on timeout */
  message?: string
}

/** pollUntil for a yes/no `predicate` */
export async function waitFor (
  predicate: () => boolean | Promise<boolean>,
  { timeoutMs = 5000, intervalMs = 50, message = 'condition not met' }: WaitForOptions = {}
): Promise<void> {
  await pollUntil(message, async () => (await predicate()) || undefined, { timeoutMs, intervalMs })
}
