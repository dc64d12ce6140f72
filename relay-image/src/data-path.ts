import { TICK_WRITES_HIGH_WATER, type DataPathLevers } from '@pos-relay/upstream-patches/noise-tcp-datapath'

/** RelayServer's `dataPath` option: data-path levers and the yamux frame size (benchmarks' A/B, bench/src/relay-cpu.ts) */
export type RelayDataPath = DataPathLevers & { yamuxMaxMessageBytes?: number }

/**
 * The relay's data path by default (patch noise-tcp-datapath of
 * @pos-relay/upstream-patches; TCP connections under Noise only, QUIC and
 * clients/SDK unchanged): `tickWrites` on, the others opt-in.
 *
 * tickWrites keeps each connection's socket corked until the end of the tick
 * (one writev per tick instead of four writes per Noise message). Measured on
 * a quiet machine (docs/benchmarks.md "Relay CPU per GiB", 7 rounds): relay
 * CPU 12.04 -> 8.36 s per GiB, lower than the unchanged relay in 7 of 7
 * paired rounds, beyond the A/A noise (2.3 %); noise-batch (10.76) and
 * noise-decrypt did not pay on their own, so they stay opt-in.
 *
 * Memory: tickWrites reports backpressure at TICK_WRITES_HIGH_WATER (1 MiB,
 * the value measured) queued on the socket, upstream at the socket's 16 KiB.
 * Those bytes have left the circuits' stream buffers, so the relay's
 * BufferBudget (max_buffered_bytes) counts them separately
 * (tickWritesQueuedBytes: every tickWrites socket's queue beyond 16 KiB):
 * at the budget, circuits hold their reading wherever the bytes wait.
 */
export const RELAY_DATA_PATH: Readonly<DataPathLevers> = { tickWrites: true }

/** the relay's default levers, with RelayServer's `dataPath` option over them (`{ tickWrites: false }`: upstream's data path) */
export function relayDataPath (option: RelayDataPath | undefined): RelayDataPath {
  return { ...RELAY_DATA_PATH, ...option }
}

export { TICK_WRITES_HIGH_WATER }
