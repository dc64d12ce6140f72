/**
 * libp2p's component logger, made only for what `DEBUG` enables.
 *
 * js-libp2p asks its logger for new loggers per connection and per stream
 * (`forComponent`, `newScope`); @libp2p/logger builds three `debug` instances
 * for each, checking the terminal (isatty) and matching every name against
 * DEBUG, even when nothing is enabled. In a relay accepting thousands of peers
 * that was 3 % of its CPU (section "reservations" of docs/benchmarks.md). Here
 * a name nothing enables gets a disabled logger, a plain object; a name DEBUG
 * enables gets upstream's logger, so `DEBUG=libp2p:*` works as before.
 */
import { defaultLogger, enabled } from '@libp2p/logger'
import type { ComponentLogger, Logger } from '@libp2p/interface'

const noop = (): void => {}

function disabledLogger (name: string, base: ComponentLogger): Logger {
  return Object.assign(noop.bind(null), {
    enabled: false,
    error: noop,
    trace: noop,
    newScope: (scope: string): Logger => componentLogger(`${name}:${scope}`, base)
  })
}

function componentLogger (name: string, base: ComponentLogger): Logger {
  return enabled(name) || enabled(`${name}:error`) || enabled(`${name}:trace`) ? base.forComponent(name) : disabledLogger(name, base)
}

/** A ComponentLogger for createLibp2p({ logger }) */
export function quietComponentLogger (base: ComponentLogger = defaultLogger()): ComponentLogger {
  return { forComponent: (name) => componentLogger(name, base) }
}
