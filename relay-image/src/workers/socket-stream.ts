import { AbstractStream } from '@libp2p/utils'
import { once } from 'node:events'
import type { AbortOptions, Logger, Stream } from '@libp2p/interface'
import type { Socket } from 'node:net'

/** libp2p's logger shape, silent: the relay logs circuits itself (pino) */
const silent: Logger = Object.assign(() => {}, { enabled: false, trace: () => {}, error: () => {}, newScope: () => silent }) as unknown as Logger

/**
 * A unix socket between two workers as a libp2p Stream, so that
 * spliceStreams (splice.ts) joins it to a circuit's stream with the same
 * pause/resume backpressure, limits and byte counting as a stream-to-stream
 * circuit. Built on @libp2p/utils' public AbstractStream (what yamux streams
 * are built on), with TCP-like half-close: close() ends our write side
 * (socket.end(); both sockets are allowHalfOpen) and the other worker's end
 * arrives as the remote's close of its write side, so a circuit's half-close
 * crosses the socket as it crosses a yamux stream.
 */
class UnixSocketStream extends AbstractStream {
  private readonly socket: Socket

  constructor (socket: Socket, direction: 'inbound' | 'outbound') {
    // no inactivity timeout here: the circuit's idle timeout (splice.ts) is the one that applies
    super({ id: 'worker-socket', direction, log: silent, inactivityTimeout: 0 })
    this.socket = socket
    socket.on('data', (buf) => { this.onData(buf) })
    socket.on('error', (err) => { this.abort(err) })
    socket.once('end', () => { this.onRemoteCloseWrite() })
    socket.once('close', (hadError) => {
      if (hadError) this.abort(new Error('worker socket error'))
      else this.onTransportClosed()
    })
    socket.on('drain', () => { this.safeDispatchEvent('drain') })
    // readLine left it paused; what arrives now waits in the read buffer for the splice's listener
    socket.resume()
  }

  sendData (data: Parameters<AbstractStream['sendData']>[0]): ReturnType<AbstractStream['sendData']> {
    let sentBytes = 0
    let canSendMore = true
    for (const buf of data) {
      sentBytes += buf.byteLength
      canSendMore = this.socket.write(buf)
      if (!canSendMore) break
    }
    return { sentBytes, canSendMore }
  }

  async sendCloseWrite (options?: AbortOptions): Promise<void> {
    if (this.socket.writableEnded || this.socket.destroyed) return
    const finished = once(this.socket, 'finish', options?.signal != null ? { signal: options.signal } : {})
    this.socket.end()
    await finished
  }

  async sendCloseRead (): Promise<void> {
    // nothing to tell the other worker: what it still sends is dropped (AbstractMessageStream)
  }

  sendReset (): void {
    // no RST on AF_UNIX: the other worker sees EOF and then the close
    this.socket.destroy()
  }

  sendPause (): void {
    this.socket.pause()
  }

  sendResume (): void {
    this.socket.resume()
  }
}

/** Wraps a connected unix socket, opened with allowHalfOpen (readLine has put back any bytes read past its header). */
export function socketStream (socket: Socket, direction: 'inbound' | 'outbound'): Stream {
  return new UnixSocketStream(socket, direction)
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
