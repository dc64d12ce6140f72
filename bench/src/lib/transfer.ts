/**
 * Transfer-and-measure over one libp2p stream (libp2p v3 stream API).
 *
 * The dialer writes `bytes` in fixed-size chunks, honouring backpressure
 * (`send()` returns false -> wait for 'drain'), closes its write side and
 * waits for the listener's reply: the number of bytes it received. The clock
 * runs from the first write until that reply, so the whole payload has
 * arrived at the listener when it stops.
 */
import type { Libp2p, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const SINK_PROTOCOL = '/pos-relay-bench/sink/1.0.0'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * Bytes the sink has received on its current stream. Dialer and listener
 * live in the same process, so the dialer can see how much of what it has
 * written has not arrived yet: data in flight (yamux windows, socket buffers,
 * and whatever the relay holds).
 */
const sinkProgress = { received: 0 }

/** Listener side: counts what arrives, then answers with the count. */
export async function handleSink (node: Libp2p): Promise<void> {
  await node.handle(SINK_PROTOCOL, async (stream) => {
    let n = 0
    sinkProgress.received = 0
    for await (const chunk of stream) {
      n += chunk.byteLength
      sinkProgress.received = n
    }
    stream.send(encoder.encode(String(n)))
    await stream.close()
  }, { runOnLimitedConnection: true })
}

function waitDrain (stream: Stream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
      if (err != null) reject(err)
      else resolve()
    }
    const onDrain = (): void => { done() }
    const onClose = (): void => { done(new Error('stream closed while waiting for drain')) }
    const onAbort = (): void => { done(signal.reason ?? new Error('aborted')) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}

export interface TransferResult {
  bytes: number
  /** what the listener reported receiving */
  received: number
  /** first write until the listener's count arrived */
  ms: number
  /** dial (or reuse) + stream negotiation, not included in `ms` */
  openMs: number
  mibPerSec: number
  /** first write until the last write was accepted (the dialer's side was done) */
  sendMs: number
  /** most bytes written but not yet received by the listener (sampled every 10 ms), MiB */
  maxInFlightMiB: number
}

export async function transfer (dialer: Libp2p, target: Multiaddr, bytes: number, opts: { chunkBytes: number, timeoutMs: number }): Promise<TransferResult> {
  const signal = AbortSignal.timeout(opts.timeoutMs)
  const chunk = new Uint8Array(opts.chunkBytes)
  crypto.getRandomValues(chunk.subarray(0, Math.min(chunk.length, 65_536)))
  const t0 = performance.now()
  const conn = await dialer.dial(target, { signal })
  const stream = await conn.newStream(SINK_PROTOCOL, { runOnLimitedConnection: true, signal })
  const t1 = performance.now()
  let sent = 0
  let maxInFlight = 0
  let ticks = 0
  const sampler = setInterval(() => {
    maxInFlight = Math.max(maxInFlight, sent - sinkProgress.received)
    if (process.env.BENCH_TRACE === '1' && ++ticks % 25 === 0) process.stderr.write(`trace t=${(performance.now() - t1).toFixed(0)} sent=${(sent / 1048576).toFixed(1)} received=${(sinkProgress.received / 1048576).toFixed(1)} MiB\n`)
  }, 10)
  try {
    while (sent < bytes) {
      const part = bytes - sent >= chunk.length ? chunk : chunk.subarray(0, bytes - sent)
      const more = stream.send(part)
      sent += part.length
      if (!more) await waitDrain(stream, signal)
    }
    const sendMs = performance.now() - t1
    await stream.close({ signal })
    let reply = ''
    for await (const c of stream) reply += decoder.decode(c.subarray())
    const t2 = performance.now()
    const received = Number(reply)
    if (received !== bytes) throw new Error(`listener received ${reply} bytes, expected ${bytes}`)
    const ms = t2 - t1
    return { bytes, received, ms, openMs: t1 - t0, mibPerSec: bytes / 1048576 / (ms / 1000), sendMs, maxInFlightMiB: maxInFlight / 1048576 }
  } catch (err) {
    stream.abort(err as Error)
    throw err
  } finally {
    clearInterval(sampler)
  }
}
