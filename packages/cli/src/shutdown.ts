import type { Logger } from '@pos-relay/shared'

/**
 * First SIGTERM/SIGINT: graceful path (drain), then exit 0.
 * A second signal while draining: stop at once, exit 1.
 */
export function handleShutdown (logger: Logger, graceful: () => Promise<void>, hard: () => Promise<void>): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ event: 'shutdown_forced', signal }, 'second signal: stopping now')
      hard().finally(() => process.exit(1))
      return
    }
    stopping = true
    logger.info({ event: 'shutdown', signal }, 'shutting down')
    graceful().then(() => process.exit(0), (err: Error) => {
      logger.error({ event: 'shutdown_failed', err: err.message }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}
