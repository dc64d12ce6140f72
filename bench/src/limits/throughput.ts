/** Part 2 of the limits bench: relayed throughput through the relays, interleaved rounds. */
import { setTimeout as sleep } from 'node:timers/promises'
import { benchScript, spawnChild, type Child } from '../lib/children.ts'
import type { CliRelay } from '../lib/cli.ts'
import { readMem } from '../lib/proc.ts'
import { roundsSummary, transferRounds } from '../lib/rounds.ts'
import type { TransferResult } from '../lib/transfer.ts'
import { config, log } from './config.ts'
import type { ThroughputResult } from './results.ts'

const MiB = 1024 * 1024

export async function measureThroughput (relays: Array<{ label: string, relay: CliRelay }>, errors: string[]): Promise<ThroughputResult[]> {
  let peers: Child | undefined
  try {
    peers = await spawnChild(benchScript('peers-process.ts'), { name: 'peers' })
    const reserveMs: number[] = []
    for (const { relay } of relays) reserveMs.push((await peers.call('listen', { relay: relay.addr })).reserveMs)
    await sleep(1000)
    const bytes = Math.round(config.mib * MiB)
    const timeoutMs = 30_000 + Math.ceil(config.mib / 2) * 1000
    const rounds = await transferRounds({
      relays,
      rounds: config.reps,
      what: 'transfer round',
      log,
      errors,
      transfer: async ({ relay }) => await peers!.call<TransferResult>('transfer', { mode: 'relay', relay: relay.addr, bytes, chunkBytes: config.chunkKiB * 1024, timeoutMs }, timeoutMs + 5000)
    })
    return relays.map(({ label, relay }, i) => {
      const { transfers, failed } = rounds[i]!
      const { medianMiBps, cpuSPerGiB } = roundsSummary(transfers, bytes)
      const rows = transfers.map(({ round, relayCpuS, result }) => ({ relay: label, round, mibPerSec: result.mibPerSec, relayCpuS, openMs: result.openMs }))
      return { label, medianMiBps, transfers: rows, failed, cpuSPerGiB, reserveMs: reserveMs[i]!, rssAfterMiB: readMem(relay.pid).rssMiB }
    })
  } finally {
    await peers?.stop()
  }
}
