import { pbStream } from '@libp2p/utils'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export const HOP = '/libp2p/circuit/relay/0.2.0/hop'

function varint (n: number): number[] {
  const out: number[] = []
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return out
}

export const RESERVE = Uint8Array.from([0x08, 0x00])

export function connectMessage (peer: PeerId): Uint8Array {
  const id = peer.toMultihash().bytes
  const peerMsg = [0x0a, ...varint(id.length), ...id]
  return Uint8Array.from([0x08, 0x01, 0x12, ...varint(peerMsg.length), ...peerMsg])
}

/** Reads the top-level varint fields of a protobuf message (enough for type/status). */
export function varintFields (buf: Uint8Array): Map<number, number> {
  const out = new Map<number, number>()
  let i = 0
  const read = (): number => {
    let n = 0; let shift = 0
    while (true) {
      const b = buf[i++]!
      n += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) return n
      shift += 7
    }
  }
  while (i < buf.length) {
    const key = read()
    const field = key >>> 3
    const wire = key & 7
    if (wire === 0) out.set(field, read())
    else if (wire === 2) { const len = read(); i += len } else throw new Error(`unexpected wire type ${wire}`)
  }
  return out
}

const raw = { encode: (b: Uint8Array) => b, decode: (b: Uint8Array | { subarray: () => Uint8Array }) => (b instanceof Uint8Array ? b : b.subarray()) }

/**
 * Sends one raw HopMessage to a relay and returns the status it answers
 * (spec numbers: 100 OK, 200 RESERVATION_REFUSED, 201 RESOURCE_LIMIT_EXCEEDED, ...).
 * Returns the open stream too, for CONNECT, where an OK keeps the circuit.
 */
export async function hopRequest (node: Libp2p, relay: Multiaddr, message: Uint8Array): Promise<{ status: number | undefined, stream: any }> {
  const stream = await node.dialProtocol(relay, HOP, { runOnLimitedConnection: true })
  const pb = pbStream(stream)
  await pb.write(message, raw)
  const reply = await pb.read(raw, { signal: AbortSignal.timeout(10_000) })
  return { status: varintFields(reply).get(5), stream: pb.unwrap() }
}

/**
 * Whether the relay ends its side of `stream` within `ms`: it should, right
 * after any refusal. Read from the stream's state and events, not by
 * iterating it: an iterator started after the remote's close never ends.
 */
export async function relayEnds (stream: any, ms = 5000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await new Promise<boolean>((resolve) => {
      if (stream.remoteWriteStatus !== 'writable') { resolve(true); return }
      stream.addEventListener('remoteCloseWrite', () => { resolve(true) }, { once: true })
      stream.addEventListener('close', () => { resolve(true) }, { once: true })
      timer = setTimeout(resolve, ms, false)
    })
  } finally {
    clearTimeout(timer)
    stream.abort?.(new Error('test done'))
  }
}
