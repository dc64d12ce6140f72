import { pino, type Logger, type LoggerOptions } from 'pino'

export type { Logger }

/** Paths pino must never print: secrets travel in these fields and headers. */
export const REDACTED_PATHS = [
  'p2p_secret',
  'p2pSecret',
  'secret',
  'keypair',
  'config.p2p_secret',
  'config.keypair',
  'req.headers.authorization',
  'headers.authorization',
  'authorization'
]

export interface CreateLoggerOptions {
  /** Component name, e.g. `relay`, `discovery`. */
  name: string
  level?: string
  /** Defaults to stderr so stdout stays free for machine-readable output. */
  destination?: NodeJS.WritableStream
}

/**
 * Structured JSON logs (pino) with secrets redacted. Level comes from the
 * argument, else `LOG_LEVEL`, else `info`.
 */
export function createLogger (opts: CreateLoggerOptions): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) }
  }
  return pino(options, (opts.destination ?? process.stderr) as pino.DestinationStream)
}
