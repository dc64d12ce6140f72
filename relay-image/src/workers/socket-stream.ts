import { AbstractMultiaddrConnection } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { once } from 'node:events'
import type { AbortOptions, Logger, Stream } from '@libp2p/interface'
import type { Socket } from 'node:net'

/** libp2p's logger shape, silent: the relay logs circuits itself (pino) */
const silent: Logger = Object.assign(() => {}, { enabled: false, trace: () => {}, error: () => {}, newScope: () => silent }) as unknown as Logger

/**
 * A unix socket between two workers as a libp2p MessageStream, so that
 * spliceStreams (splice.ts) joins it to a circuit's stream with the same
 * pause/resume backpressure, limits and byte counting as a stream-to-stream
 * circuit. Built on @libp2p/utils' public AbstractMultiaddrConnection, the
 * way @libp2p/tcp wraps its sockets (socket-to-conn.js, not exported).
 */
class UnixSocketStream extends AbstractMultiaddrConnection {
  private readonly socket: Socket

  constructor (socket: Socket, path: string, direction: 'inbound' | 'outbound') {
    // no inactivity timeout here: the circuit's idle timeout (splice.ts) is the one that applies
    super({ remoteAddr: multiaddr(`/unix/${encodeURIComponent(path)}`), direction, log: silent, inactivityTimeout: 0 })
    this.socket = socket
    socket.on('data', (buf) => { this.onData(buf) })
    socket.on('error', (err) => { this.abort(err) })
    socket.once('end', () => { this.onTransportClosed() })
    socket.once('close', (hadError) => {
      if (hadError) this.abort(new Error('worker socket error'))
      else this.onTransportClosed()
    })
    socket.on('drain', () => { this.safeDispatchEvent('drain') })
    // readLine left it paused; what arrives now waits in the read buffer for the splice's listener
    socket.resume()
  }

  sendData (data: Parameters<AbstractMultiaddrConnection['sendData']>[0]): ReturnType<AbstractMultiaddrConnection['sendData']> {
    let sentBytes = 0
    let canSendMore = true
    for (const buf of data) {
      sentBytes += buf.byteLength
      canSendMore = this.socket.write(buf)
      if (!canSendMore) break
    }
    return { sentBytes, canSendMore }
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    if (this.socket.destroyed) return
    this.socket.destroySoon()
    await once(this.socket, 'close', options?.signal != null ? { signal: options.signal } : {})
  }

  sendReset (): void {
    // no RST on AF_UNIX: the other worker sees EOF (then its splice ends the circuit)
    this.socket.destroy()
  }

  sendPause (): void {
    this.socket.pause()
  }

  sendResume (): void {
    this.socket.resume()
  }
}

/**
 * Wraps a connected unix socket (readLine has put back any bytes read past
 * its header). Typed as a Stream for spliceStreams, which uses only what
 * AbstractMessageStream has (events, send/pause/resume, read and write
 * status, buffers), none of a Stream's protocol fields.
 */
export function socketStream (socket: Socket, path: string, direction: 'inbound' | 'outbound'): Stream {
  return new UnixSocketStream(socket, path, direction) as unknown as Stream
}

/**
 * Reads one newline-terminated JSON line (at most 4 KiB) from `socket`,
 * puts back whatever came after it, and leaves the socket paused.
 */
export async function readLine (socket: Socket, signal?: AbortSignal): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0)
    const done = (err?: Error, value?: unknown): void => {
      socket.off('data', onData); socket.off('error', done); socket.off('close', onClose); signal?.removeEventListener('abort', onAbort)
      socket.pause()
      if (err != null) reject(err)
      else resolve(value)
    }
    const onClose = (): void => { done(new Error('worker socket closed before its header')) }
    const onAbort = (): void => { done(new Error('timed out waiting for the worker socket header')) }
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      const nl = buf.indexOf(10)
      if (nl < 0) { if (buf.length > 4096) done(new Error('worker socket header too long')); return }
      let value: unknown
      try { value = JSON.parse(buf.subarray(0, nl).toString('utf8')) } catch (err: any) { done(err); return }
      socket.off('data', onData)
      socket.pause()
      if (nl + 1 < buf.length) socket.unshift(buf.subarray(nl + 1))
      done(undefined, value)
    }
    socket.on('data', onData)
    socket.once('error', done)
    socket.once('close', onClose)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
