export interface BackoffOptions {
  initialMs: number
  maxMs: number
  /** 0..1: fraction of the delay that is randomised, so a fleet does not retry in lock-step. */
  jitter?: number
}

/**
 * The one backoff of the project: the delay before retry number `attempt` (0 = the first retry),
 * `initialMs` doubling up to `maxMs`, then spread by ±`jitter` (default 20 %) so that a fleet of
 * clients does not retry a restarted server in lock-step.
 */
export function backoffDelay (attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.max(0, attempt))
  const spread = base * (opts.jitter ?? 0.2)
  return Math.max(0, Math.round(base - spread + random() * 2 * spread))
}

/**
 * Exponential backoff with jitter (backoffDelay) that counts its attempts. `next()` returns the
 * delay for the next attempt; `reset()` after a success.
 */
export class Backoff {
  private attempt = 0
  private readonly opts: Required<BackoffOptions>

  constructor (opts: BackoffOptions) {
    this.opts = { jitter: 0.2, ...opts }
  }

  next (): number {
    return backoffDelay(this.attempt++, this.opts)
  }

  reset (): void {
    this.attempt = 0
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when aborted first. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) { reject(signal.reason); return }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
