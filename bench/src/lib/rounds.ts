/**
 * Relayed transfers through several relays in interleaved rounds (limits,
 * auth): one transfer per relay a round, the order rotating each round so
 * that no relay always goes first, the relay's CPU seconds read around each
 * transfer. A failed transfer is logged with the relay's stderr tail and
 * recorded in `errors`, and the rounds go on: one failure must not lose the
 * others.
 */
import type { CliRelay } from './cli.ts'
import { readCpuSeconds } from './proc.ts'
import { errMsg, type Log } from './script.ts'
import { median } from './stats.ts'

export interface RoundRelay { label: string, relay: CliRelay }

export interface RoundTransfer<T> {
  /** 1-based */
  round: number
  relayCpuS: number
  result: T
}

export interface RoundsOptions<V extends RoundRelay, T> {
  relays: V[]
  rounds: number
  /** names a transfer in the log and in errors, e.g. 'round' */
  what: string
  log: Log
  errors: string[]
  transfer: (v: V) => Promise<T>
  /** more for the log line of a transfer */
  describe?: (result: T) => string
  afterRound?: (round: number) => void
}

/** Per relay, in the order of `relays`: its transfers and how many failed. */
export async function transferRounds<V extends RoundRelay, T extends { mibPerSec: number }> (o: RoundsOptions<V, T>): Promise<Array<{ transfers: Array<RoundTransfer<T>>, failed: number }>> {
  const out = o.relays.map(() => ({ transfers: [] as Array<RoundTransfer<T>>, failed: 0 }))
  for (let round = 1; round <= o.rounds; round++) {
    for (let j = 0; j < o.relays.length; j++) {
      const i = (j + round - 1) % o.relays.length
      const { label, relay } = o.relays[i]!
      const c0 = readCpuSeconds(relay.pid)
      try {
        const result = await o.transfer(o.relays[i]!)
        const relayCpuS = readCpuSeconds(relay.pid) - c0
        out[i]!.transfers.push({ round, relayCpuS, result })
        o.log(`${o.what} ${round}/${o.rounds}, ${label}: ${result.mibPerSec.toFixed(1)} MiB/s, relay CPU ${relayCpuS.toFixed(2)} s${o.describe?.(result) ?? ''}`)
      } catch (err) {
        out[i]!.failed++
        o.log(`${o.what} ${round}/${o.rounds}, ${label} FAILED: ${errMsg(err)}\n--- ${relay.name} stderr (tail) ---\n${relay.stderrTail()}`)
        o.errors.push(`${o.what} ${round} via ${label}: ${errMsg(err)}`)
      }
    }
    o.afterRound?.(round)
  }
  return out
}

/** Median MiB/s and relay CPU seconds per GiB relayed over transfers of `bytes` each. */
export function roundsSummary (transfers: Array<RoundTransfer<{ mibPerSec: number }>>, bytes: number): { medianMiBps: number, relayCpuS: number, cpuSPerGiB: number } {
  const relayCpuS = transfers.reduce((a, x) => a + x.relayCpuS, 0)
  return { medianMiBps: median(transfers.map((x) => x.result.mibPerSec)), relayCpuS, cpuSPerGiB: relayCpuS / (transfers.length * bytes / 1024 ** 3) }
}
