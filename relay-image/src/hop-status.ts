/**
 * Circuit Relay v2 status codes (libp2p specs, relay/circuit-v2.md).
 * Upstream's generated protobuf codec is not exported by
 * @libp2p/circuit-relay-v2, so the few refusals we send ourselves are encoded
 * here: a STATUS-type HopMessage carries only two varint fields.
 */
export const HopStatus = {
  OK: 100,
  RESERVATION_REFUSED: 200,
  RESOURCE_LIMIT_EXCEEDED: 201,
  PERMISSION_DENIED: 202,
  CONNECTION_FAILED: 203,
  NO_RESERVATION: 204,
  MALFORMED_MESSAGE: 400,
  UNEXPECTED_MESSAGE: 401
} as const
export type HopStatusCode = typeof HopStatus[keyof typeof HopStatus]

const HOP_TYPE_STATUS = 2

function varint (n: number): number[] {
  const out: number[] = []
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return out
}

/** `HopMessage { type: STATUS, status }` as protobuf bytes (field 1 = type, field 5 = status). */
export function encodeHopStatus (status: HopStatusCode): Uint8Array {
  return Uint8Array.from([0x08, ...varint(HOP_TYPE_STATUS), 0x28, ...varint(status)])
}

/** A codec usable with `pbStream(...).write(value, codec)` from @libp2p/utils. */
export const hopStatusCodec = {
  encode: (status: HopStatusCode): Uint8Array => encodeHopStatus(status)
}
