export interface BackoffOptions {
  initialMs: number
  maxMs: number
  /** 0..1: fraction of the delay that is randomised, so a fleet does not retry in lock-step. */
  jitter?: number
}

/**
 * Exponential backoff with jitter. `next()` returns the delay for the next
 * attempt; `reset()` after a success.
 */
export class Backoff {
  private attempt = 0
  private readonly opts: Required<BackoffOptions>

  constructor (opts: BackoffOptions) {
    this.opts = { jitter: 0.2, ...opts }
  }

  next (): number {
    const base = Math.min(this.opts.maxMs, this.opts.initialMs * 2 ** this.attempt)
    this.attempt++
    const spread = base * this.opts.jitter
    return Math.max(0, Math.round(base - spread + Math.random() * 2 * spread))
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
