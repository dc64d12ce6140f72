/** Bench knobs from the environment. */

/** A positive number from env var `name`, or `dflt` when unset or empty; throws on anything else. */
export function envNumber (name: string, dflt: number): number {
  const v = process.env[name]
  if (v == null || v === '') return dflt
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(v)}`)
  return n
}
