/**
 * Yamux with data frames of bounded size.
 *
 * @chainsafe/libp2p-yamux 8.0.1 ignores its own `maxMessageSize` option (64
 * KiB by default; 7.x honoured it): a stream sends everything queued, up to
 * its whole send window, as one data frame. rust-libp2p (yamux crate 0.13+,
 * `MAX_FRAME_BODY_LEN` = 1 MiB) refuses a frame body larger than 1 MiB with
 * `FrameTooLarge` and closes the whole connection. Once a rust peer has grown
 * its receive window past 1 MiB, any js sender whose queue holds more than
 * that (a relay splicing a fast circuit into a slower one, a peer writing
 * faster than the network) sends such a frame and loses the connection, with
 * every stream on it. That is what broke large transfers between rust peers
 * through our relay (about 1 in 6 of 256 MiB transfers on loopback).
 *
 * `yamux()` here is upstream's with the patch yamux-frame-size of
 * @pos-relay/upstream-patches (UPSTREAM.md): no frame is larger than
 * `maxMessageSize`. Every libp2p node of ours (the
 * relay, the client SDK, test and bench peers) uses it.
 */
import { yamux as upstreamYamux, type YamuxMuxerInit } from '@chainsafe/libp2p-yamux'
import { boundFrameSize } from '@pos-relay/upstream-patches/yamux-frame-size'
import { patchDataPath, type DataPathLevers } from '@pos-relay/upstream-patches/noise-tcp-datapath'
import type { StreamMuxerFactory } from '@libp2p/interface'

/** yamux frame header (version, type, flags, stream id, length) */
export const YAMUX_HEADER_BYTES = 12
/**
 * Largest frame we send, header included: the most plaintext one Noise
 * message carries (65535 minus the 16-byte tag), so a frame sent on its own is
 * one encryption instead of two (a 64 KiB frame is split
 * into 65519 + 17 bytes). Measured, it makes no difference to relay CPU
 * (3 × 256 MiB rust to rust, two interleaved runs each: 64 KiB frames 10.9 and
 * 9.6 s, 65519 bytes 10.9 and 9.5 s; 512 KiB frames with the key-object Noise
 * of ./noise.ts 6.9 and 7.0 s, like 65519 bytes with it). rust-yamux sends
 * 16 KiB and accepts up to 1 MiB.
 */
export const DEFAULT_YAMUX_MAX_MESSAGE_BYTES = 65535 - 16

export interface BoundedYamuxInit extends YamuxMuxerInit {
  /** largest yamux frame sent, header included (default 65519 bytes, one Noise message; at most 1 MiB + 12 for rust peers) */
  maxMessageSize?: number
  /**
   * Opt-in levers on the connection under the muxer (Noise over TCP only):
   * patch noise-tcp-datapath of @pos-relay/upstream-patches. Off by default
   * here (clients, SDK); the relay turns tickWrites on (relay-image/src/data-path.ts).
   * See docs/benchmarks.md "Relay CPU per GiB" for what each one measured.
   */
  dataPath?: DataPathLevers
}

export function yamux (init: BoundedYamuxInit = {}): () => StreamMuxerFactory {
  const maxMessageSize = init.maxMessageSize ?? DEFAULT_YAMUX_MAX_MESSAGE_BYTES
  const maxBody = maxMessageSize - YAMUX_HEADER_BYTES
  if (!Number.isInteger(maxBody) || maxBody < 1024) throw new Error(`yamux maxMessageSize must be an integer of at least ${1024 + YAMUX_HEADER_BYTES} bytes`)
  const { dataPath, ...upstreamInit } = init
  const bounded = boundFrameSize(upstreamYamux({ ...upstreamInit, maxMessageSize }), maxBody)
  if (dataPath == null || !Object.values(dataPath).some((on) => on === true)) return bounded
  return () => {
    const factory = bounded()
    const createStreamMuxer = factory.createStreamMuxer.bind(factory)
    factory.createStreamMuxer = (maConn) => {
      patchDataPath(maConn, dataPath)
      return createStreamMuxer(maConn)
    }
    return factory
  }
}
