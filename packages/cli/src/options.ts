import { InvalidArgumentError, Option } from 'commander'

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

export function option (flags: string, description: string, env?: string): Option {
  const opt = new Option(flags, description)
  return env != null ? opt.env(env) : opt
}

export const LOG_LEVEL_HELP = 'log level: fatal, error, warn, info, debug, trace'
