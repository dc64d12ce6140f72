import { type Command, InvalidArgumentError, type Option } from 'commander'
import { createLogger } from '@pos-relay/shared'

/**
 * Environment variables are namespaced POS_RELAY_… so that one name means one thing: before,
 * REDIS_URL was the rate-limit Redis for `run` and the registry for `discovery` and `operator`.
 * The old names are still read, each with a one-line deprecation warning on stderr.
 */

/** the deprecated name an option's POS_RELAY_… variable replaces */
const deprecatedNames = new WeakMap<Option, string>()

export function deprecatedEnv (opt: Option, oldName: string): Option {
  deprecatedNames.set(opt, oldName)
  return opt
}

export function deprecatedEnvOf (opt: Option): string | undefined {
  return deprecatedNames.get(opt)
}

/** says once that `oldName` is deprecated in favour of `newName` (or ignored, when both are set) */
export type DeprecationWarner = (oldName: string, newName: string, ignored: boolean) => void

function deprecationText (oldName: string, newName: string, ignored: boolean): string {
  return ignored
    ? `${oldName} is deprecated and ignored: ${newName} is set`
    : `${oldName} is deprecated: use ${newName} (read from ${oldName} for now)`
}

/** plain text, for the commands that print for people */
export const textWarner: DeprecationWarner = (oldName, newName, ignored) => {
  process.stderr.write(`pos-relay: warning: ${deprecationText(oldName, newName, ignored)}\n`)
}

/** one JSON log line, in the command's own log format, for the commands that log JSON */
export function jsonWarner (component: string): DeprecationWarner {
  return (oldName, newName, ignored) => {
    createLogger({ name: component, level: 'warn' }).warn({ event: 'deprecated_env', deprecated: oldName, use: newName }, deprecationText(oldName, newName, ignored))
  }
}

let warner: DeprecationWarner = textWarner
const warned = new Set<string>()

export function setDeprecationWarner (w: DeprecationWarner): void {
  warner = w
}

function warnOnce (oldName: string, newName: string, ignored: boolean): void {
  if (warned.has(oldName)) return
  warned.add(oldName)
  warner(oldName, newName, ignored)
}

const isSet = (v: string | undefined): v is string => v != null && v !== ''

/** `name`, else the deprecated `oldName` (with a warning); an old name next to a new one is ignored, with a warning */
export function readEnv (name: string, oldName?: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name]
  if (oldName != null && isSet(env[oldName])) {
    warnOnce(oldName, name, isSet(value))
    if (!isSet(value)) return env[oldName]
  }
  return value
}

/**
 * Commander reads each option's POS_RELAY_… variable itself; this fills in, from the deprecated
 * name, the options it left at their default. Runs before the command's action.
 */
export function applyDeprecatedEnv (cmd: Command, env: NodeJS.ProcessEnv = process.env): void {
  for (const opt of cmd.options) {
    const oldName = deprecatedNames.get(opt)
    if (oldName == null || opt.envVar == null || !isSet(env[oldName])) continue
    const key = opt.attributeName()
    const source = cmd.getOptionValueSource(key)
    if (source === 'cli' || source === 'env') {
      // the flag or the new variable decided; say only that the old one is not read
      warnOnce(oldName, source === 'cli' ? opt.long ?? opt.flags : opt.envVar, true)
      continue
    }
    const raw = env[oldName]!
    warnOnce(oldName, opt.envVar, false)
    let value: unknown = raw
    if (!opt.required && !opt.optional) value = !opt.negate
    else if (opt.parseArg != null) {
      try {
        value = opt.parseArg(raw, opt.defaultValue)
      } catch (err: any) {
        if (!(err instanceof InvalidArgumentError)) throw err
        cmd.error(`error: option '${opt.flags}' value '${raw}' from env '${oldName}' is invalid. ${err.message}`, { exitCode: 1, code: 'commander.invalidArgument' })
      }
    }
    cmd.setOptionValueWithSource(key, value, 'env')
  }
}
