import { pino, type Logger, type LoggerOptions } from 'pino'

export type { Logger }

/** Field names that carry secrets: account API keys, relay tickets, Redis URLs (which hold passwords), keys. */
const SECRET_FIELDS = [
  'p2p_secret', 'p2pSecret', 'secret', 'admin_secret', 'adminSecret', 'keypair',
  'api_key', 'apiKey', 'ticket', 'token',
  'redis_url', 'redisUrl'
]

/**
 * Paths pino must never print: the secret fields at the top level and one level down (a config,
 * an options object, `auth.redis_url`, `rate_limits.redis_url`), and the Authorization headers.
 */
export const REDACTED_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  'config.rate_limits.redis_url',
  'config.auth.redis_url',
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
