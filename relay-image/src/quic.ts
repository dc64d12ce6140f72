import { installQuicReadBackpressure } from '@pos-relay/upstream-patches/quic-read-backpressure'
import type { quic as quicFactory, QuicOptions } from '@chainsafe/libp2p-quic'

/**
 * QUIC for js-libp2p is `@chainsafe/libp2p-quic` (quinn in a napi-rs native
 * module), pinned to exactly 2.1.1: the 1.x line was built for
 * `@multiformats/multiaddr` 12 and fails under libp2p 3 with
 * `ma.nodeAddress is not a function` (multiaddr 13 removed nodeAddress()).
 *
 * It is loaded on demand, so a relay started with QUIC off never loads the
 * native module: a platform without a prebuilt binary (only linux-x64-gnu is
 * in this project's lock file) can still run the TCP relay.
 */
export class QuicUnavailableError extends Error {
  override name = 'QuicUnavailableError'
}

type QuicModule = { quic: typeof quicFactory }

let loaded: Promise<QuicModule> | undefined

/**
 * The QUIC transport factory with read backpressure (the patch
 * quic-read-backpressure of @pos-relay/upstream-patches, UPSTREAM.md), or a
 * clear error.
 */
export async function loadQuic (): Promise<QuicModule> {
  loaded ??= (async () => {
    let mod: QuicModule
    try {
      mod = await import('@chainsafe/libp2p-quic')
    } catch (err: any) {
      throw new QuicUnavailableError(`QUIC is on but its native module does not load on ${process.platform}-${process.arch}: ${err.message}. Run with --no-quic (config: "quic": false) to serve TCP only.`)
    }
    await installQuicReadBackpressure()
    return mod
  })()
  return await loaded
}

/** `quic()` with the relay's handshake timeout; everything else is the package's defaults. */
export async function quicTransport (opts: Partial<QuicOptions> = {}): Promise<ReturnType<typeof quicFactory>> {
  const { quic } = await loadQuic()
  return quic(opts)
}
