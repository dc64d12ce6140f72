import { loadQuic, parseConfig, QuicUnavailableError, type RelayConfig } from '@pos-relay/relay'
import type { Logger } from '@pos-relay/shared'
import { configError } from './options.js'

/**
 * QUIC needs a native module, prebuilt for a few platforms only (this project's lock file has
 * linux-x64 glibc). When QUIC is on by default (built-in default or config file), a module that does
 * not load switches QUIC off with a warning and the relay serves TCP; when `--quic` or
 * POS_RELAY_QUIC=true asked for it, that is an error.
 */
export async function quicOrTcp (config: RelayConfig, requested: boolean | undefined, logger: Logger): Promise<RelayConfig> {
  if (!config.quic) return config
  try {
    await loadQuic()
    return config
  } catch (err) {
    if (!(err instanceof QuicUnavailableError)) throw err
    if (requested === true) throw configError(err.message)
    const platform = `${process.platform}-${process.arch}`
    logger.warn({ event: 'quic_unavailable', platform, err: err.message },
      `QUIC is off: its native module does not load on ${platform}, so the relay serves TCP only (--no-quic skips QUIC without this warning, --quic makes it an error)`)
    return parseConfig({ ...config, quic: false }, 'config with QUIC off')
  }
}
