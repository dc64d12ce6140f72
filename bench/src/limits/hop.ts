/**
 * A legitimate client of the relay: a fresh js-libp2p node (TCP + Noise +
 * Yamux + identify) that dials the relay and sends one raw Circuit Relay v2
 * HopMessage RESERVE (the same bytes as relay-image/test/hop-client.ts), timed
 * from the dial until the relay's answer arrived.
 */
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

export const HOP = '/libp2p/circuit/relay/0.2.0/hop'
/** HopMessage { type: RESERVE } */
export const RESERVE = Uint8Array.from([0x08, 0x00])

function readVarint (buf: Uint8Array, at: number): { value: number, next: number } | undefined {
  let n = 0
  let shift = 0
  for (let i = at; i < buf.length; i++) {
    const b = buf[i]!
    n += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) return { value: n, next: i + 1 }
    shift += 7
  }
  return undefined
}

/** The top-level varint fields of a protobuf message (HopMessage.status is field 5). */
export function varintFields (buf: Uint8Array): Map<number, number> {
  const out = new Map<number, number>()
  let i = 0
  while (i < buf.length) {
    const key = readVarint(buf, i)
    if (key == null) break
    i = key.next
    const wire = key.value & 7
    if (wire === 0) {
      const v = readVarint(buf, i)
      if (v == null) break
      out.set(key.value >>> 3, v.value)
      i = v.next
    } else if (wire === 2) {
      const len = readVarint(buf, i)
      if (len == null) break
      i = len.next + len.value
    } else {
      throw new Error(`unexpected protobuf wire type ${wire}`)
    }
  }
  return out
}

export interface LegitResult { ms: number, status?: number, error?: string }

/** One reservation by a fresh node; never throws, bounded by timeoutMs. */
export async function legitReservation (relay: Multiaddr, timeoutMs = 10_000): Promise<LegitResult> {
  const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
  const signal = AbortSignal.timeout(timeoutMs)
  const t0 = performance.now()
  try {
    const stream = await node.dialProtocol(relay, HOP, { runOnLimitedConnection: true, signal })
    stream.send(Uint8Array.from([RESERVE.length, ...RESERVE]))
    let buf = new Uint8Array(0)
    let status: number | undefined
    const onAbort = (): void => { stream.abort(new Error(`no answer after ${timeoutMs} ms`)) }
    signal.addEventListener('abort', onAbort)
    try {
      for await (const chunk of stream) {
        const c = chunk.subarray()
        const next = new Uint8Array(buf.length + c.length)
        next.set(buf)
        next.set(c, buf.length)
        buf = next
        const len = readVarint(buf, 0)
        if (len != null && buf.length >= len.next + len.value) {
          status = varintFields(buf.subarray(len.next, len.next + len.value)).get(5)
          break
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
    const ms = performance.now() - t0
    stream.abort(new Error('done'))
    return status == null ? { ms, error: 'stream ended without an answer' } : { ms, status }
  } catch (err: any) {
    return { ms: performance.now() - t0, error: String(err?.message ?? err).split('\n')[0] }
  } finally {
    try { await node.stop() } catch {}
  }
}
