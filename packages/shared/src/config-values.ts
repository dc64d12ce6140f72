/**
 * Strict parsers for values that arrive as strings (env vars, flags). Each error names the
 * variable or flag, so a typo stops the process at start-up instead of silently meaning
 * something else (`AUTH_ENABLED=false` turning auth on, a Redis URL that never connects).
 */

const TRUE = /^(true|1|yes|on)$/i
const FALSE = /^(false|0|no|off)$/i

/** true/false, 1/0, yes/no, on/off (any case); anything else throws naming `name`. Empty or unset: undefined. */
export function parseBoolean (name: string, value: string | undefined): boolean | undefined {
  if (value == null || value.trim() === '') return undefined
  if (TRUE.test(value.trim())) return true
  if (FALSE.test(value.trim())) return false
  throw new Error(`${name} must be true or false (also 1/0, yes/no, on/off), got "${value}"`)
}

/**
 * Why `value` is not a usable Redis URL, or undefined. The value itself is never echoed: a
 * mistyped URL may still carry a password.
 */
export function redisUrlProblem (value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'is not a URL; expected e.g. redis://127.0.0.1:6379 or rediss://user:password@host:6380/0'
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return `must use redis:// or rediss://, not ${url.protocol}//`
  if (url.hostname === '') return 'has no host'
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d+$/.test(url.pathname)) return 'has a path that is not a database number'
  return undefined
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
