import { InvalidArgumentError, Option } from 'commander'
import { LOG_LEVELS, parseBoolean, redisUrlProblem } from '@pos-relay/shared'
import { deprecatedEnv, readEnv } from './env.js'

/** `--flag <n>` parsed as a non-negative integer, with a clear error. */
export function intArg (name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${value}"`)
    return Number(value)
  }
}

/** repeatable option: `--announce A --announce B`, or `RELAY_ANNOUNCE=A,B` */
export function collect (value: string, previous: string[] | undefined): string[] {
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  return [...(previous ?? []), ...parts]
}

/** an option read from `env` too (a POS_RELAY_… name); `deprecated` is the old name it replaces, still read with a warning */
export function option (flags: string, description: string, env?: string, deprecated?: string): Option {
  const opt = new Option(flags, description)
  if (env == null) return opt
  opt.env(env)
  return deprecated != null ? deprecatedEnv(opt, deprecated) : opt
}

export const LOG_LEVEL_HELP = 'log level: fatal, error, warn, info, debug, trace, silent'

/** main() exits with status 2 on these: the configuration, not the run, is wrong */
export function configError (message: string): Error {
  const err = new Error(message)
  err.name = 'ConfigError'
  return err
}

/** `--log-level`: a pino level; an unknown one is refused rather than left for pino to trip over later */
export function logLevelArg (value: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new InvalidArgumentError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${value}"`)
  return value
}

/**
 * A Redis URL flag, checked at start-up: ioredis would accept almost anything and retry for ever,
 * so the process would report ready and then answer 503. The value is not echoed (it may hold a password).
 */
export function checkRedisUrl (flag: string, env: string, value: string | undefined): void {
  if (value == null) return
  const problem = redisUrlProblem(value)
  if (problem != null) throw configError(`${flag} (${env}) ${problem}`)
}

/** A boolean environment variable, strictly: `AUTH_ENABLED=false` must mean off, `AUTH_ENABLED=ture` must stop the process. */
export function boolEnv (name: string, deprecated?: string, env: NodeJS.ProcessEnv = process.env): boolean | undefined {
  const value = readEnv(name, deprecated, env)
  try {
    return parseBoolean(value === env[name] ? name : deprecated ?? name, value)
  } catch (err: any) {
    throw configError(err.message)
  }
}

/**
 * An ISO 8601 date (`2030-01-31`, midnight UTC) or date-time with a zone (`2030-01-31T10:00:00Z`),
 * checked field by field: Date.parse would roll 2030-02-30 over to March 2.
 */
export function isoDateArg (name: string) {
  return (value: string): string => {
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/.exec(value)
    const [y, mo, d, h, mi, sec] = (m ?? []).slice(1, 7).map((x) => Number(x ?? 0))
    const daysInMonth = new Date(Date.UTC(y!, mo!, 0)).getUTCDate()
    const valid = m != null && mo! >= 1 && mo! <= 12 && d! >= 1 && d! <= daysInMonth && h! < 24 && mi! < 60 && sec! < 60
    if (!valid) throw new InvalidArgumentError(`${name} must be a real ISO 8601 date (2030-01-31) or date-time with a zone (2030-01-31T10:00:00Z), got "${value}"`)
    // a bare date means midnight UTC
    return m[4] == null ? `${value}T00:00:00Z` : new Date(value).toISOString()
  }
}
