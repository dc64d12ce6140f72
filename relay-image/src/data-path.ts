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
 * Memory: tickWrites reports backpressure at TICK_WRITES_HIGH_WATER (1 MiB)
 * queued on the socket, upstream at the socket's 16 KiB. Those bytes have
 * left the circuits' stream buffers, so BufferBudget (max_buffered_bytes)
 * does not see them: per connection whose reader is slower than the relay,
 * up to ~1 MiB more (plus one tick's writes) than upstream, outside the
 * budget. A connection only queues what its streams' send windows allow (a
 * stalled js or rust reader grants 256 KiB per stream until it reads), so the
 * full 1 MiB needs a slow connection carrying several busy circuits. Worst
 * case: (connections with a slow reader) × 1 MiB; with the default budget
 * (256 MiB) and 1,024 stalled circuits to distinct listeners, about 256 KiB
 * each, i.e. up to the budget again. 1 MiB is kept because it is what was
 * measured; the budget should account for it (count sockets' writableLength
 * per connection, or reserve connections × high-water) before relays run
 * close to their memory limit: see docs/benchmarks.md.
 */
export const RELAY_DATA_PATH: Readonly<DataPathLevers> = { tickWrites: true }

/** the relay's default levers, with RelayServer's `dataPath` option over them (`{ tickWrites: false }`: upstream's data path) */
export function relayDataPath (option: RelayDataPath | undefined): RelayDataPath {
  return { ...RELAY_DATA_PATH, ...option }
}

export { TICK_WRITES_HIGH_WATER }
