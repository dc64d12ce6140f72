/** The limits bench's relays: their flags, and the denial counters read from their metrics. */
import type { CliRelay } from '../lib/cli.ts'

/** per-IP, per-peer rate limits off */
export const RELAY_OFF = ['--ip-connections-per-second', '0', '--peer-reservations-per-minute', '0', '--peer-circuits-per-minute', '0']
/** defaults + Redis, the per-IP rate raised so that nothing is refused */
export const relayOn = (redisUrl: string): string[] => ['--redis', redisUrl, '--ip-connections-per-second', '100000']

/** The relay's flags for the report (Redis's port elided: it changes every run). */
export const relayArgsForDoc = (r: CliRelay): string => r.flags.length === 0 ? '(defaults)' : r.flags.join(' ').replace(/redis:\/\/[^ ]+/, 'redis://127.0.0.1:<port>')

/** pos_relay_denials_total by reason */
export async function denialCounts (relay: CliRelay): Promise<Record<string, number>> {
  const text = await relay.metrics()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^pos_relay_denials_total\{reason="([^"]+)"\} (\S+)$/gm)) out[m[1]!] = Number(m[2])
  return out
}

/** b - a, the positive entries only */
export function countsDelta (a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0)
  return out
}
