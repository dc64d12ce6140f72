/**
 * A minimal RESP client for the few admin commands the benches send to
 * its own Redis (CONFIG RESETSTAT, INFO commandstats, FLUSHALL): one command
 * per connection, bounded in time. Not used on any measured path.
 */
import { connect } from 'node:net'

function encode (args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`
}

/** Sends one command and returns its reply (simple string, bulk string or integer as a string). */
export function redisCommand (port: number, args: string[], timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let buf = Buffer.alloc(0)
    const done = (err: Error | undefined, value?: string): void => {
      clearTimeout(timer)
      socket.destroy()
      if (err != null) reject(err)
      else resolve(value!)
    }
    const timer = setTimeout(() => { done(new Error(`redis ${args[0]}: no reply after ${timeoutMs} ms`)) }, timeoutMs)
    socket.on('error', (err) => { done(err) })
    socket.on('connect', () => { socket.write(encode(args)) })
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      const eol = buf.indexOf('\r\n')
      if (eol < 0) return
      const head = buf.subarray(0, eol).toString('latin1')
      const type = head[0]
      if (type === '+' || type === ':') { done(undefined, head.slice(1)); return }
      if (type === '-') { done(new Error(`redis ${args[0]}: ${head.slice(1)}`)); return }
      if (type === '$') {
        const len = Number(head.slice(1))
        if (len < 0) { done(undefined, ''); return }
        if (buf.length < eol + 2 + len + 2) return
        done(undefined, buf.subarray(eol + 2, eol + 2 + len).toString('utf8'))
        return
      }
      done(new Error(`redis ${args[0]}: unexpected reply ${JSON.stringify(head)}`))
    })
  })
}

/** `INFO commandstats` as command name -> calls. */
export async function commandCalls (port: number): Promise<Record<string, number>> {
  const text = await redisCommand(port, ['INFO', 'commandstats'])
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2])
  return out
}

/** after - before, without zero rows and without the bench's own INFO / CONFIG calls */
export function callsDelta (before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [cmd, n] of Object.entries(after)) {
    if (cmd === 'info' || cmd.startsWith('config')) continue
    const d = n - (before[cmd] ?? 0)
    if (d > 0) out[cmd] = d
  }
  return out
}
