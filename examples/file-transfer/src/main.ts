/**
 * Example: two peers exchange a file through a pos-relay relay.
 *
 *   node src/main.ts listen --discovery http://127.0.0.1:8080 --api-key KEY [--out DIR] [--relay-count N]
 *   node src/main.ts send   --discovery http://127.0.0.1:8080 --api-key KEY --peer <peer id> --file PATH [--relay-count N]
 *
 * Both peers find relays through the discovery API. The listener reserves a
 * slot and prints its peer id; the sender dials it through the relay (DCUtR
 * upgrades the connection to a direct one when the NATs allow it). The file
 * goes as `<sha256> <name>\n` followed by the bytes; the receiver writes them
 * to a `.part` file, renames it to `received-<name>` only when the SHA-256
 * matched, and answers with the SHA-256 it computed, which the sender checks
 * (a failed transfer prints `receive_failed` and leaves no received file).
 * `--file` and `--out` are relative to the folder the command was run from
 * (npm's INIT_CWD under `npm run -w`); a missing or unreadable `--file` or an
 * unwritable `--out` is one line on stderr and exit code 2. The listener keeps running and
 * takes any number of files; it prints `reserved` / `reservation_lost` lines as
 * its reservations come and go (failover, docs/protocol.md section 4).
 * `--relay-count` is the listener's relayCount (default 2); a sender given the
 * same number tries relayCount + 2 relays of the listener's ranking.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'
import { createRelayPeer, isRelayed } from '@pos-relay/client'
import { encodeHeader, IncomingFile, parseHeader, readableFile, sha256File, UsageError, writableDir } from './files.ts'

// 2.0.0: the header carries the file's SHA-256, so the receiver keeps only files that match
const PROTOCOL = '/pos-relay-example/file/2.0.0'
const MAX_HEADER = 4096

/** one line on stderr and an exit code, never a stack trace: the user's mistake is not a crash */
function fail (message: string, code: number): never {
  process.stderr.write(`file-transfer: ${message}\n`)
  process.exit(code)
}

let values: Record<string, string | undefined>
let positionals: string[]
try {
  ({ positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      discovery: { type: 'string', default: process.env.DISCOVERY_URL ?? 'http://127.0.0.1:8080' },
      // the account's API key, when the relays require tickets (pos-relay dev prints one)
      'api-key': { type: 'string', default: process.env.API_KEY },
      out: { type: 'string', default: '.' },
      peer: { type: 'string' },
      file: { type: 'string' },
      'relay-count': { type: 'string', default: '2' }
    }
  }) as { positionals: string[], values: Record<string, string | undefined> })
} catch (err) {
  fail((err as Error).message, 2)
}

const relayCount = Number(values['relay-count'])
if (!Number.isInteger(relayCount) || relayCount < 1) fail(`--relay-count must be a positive integer, not ${values['relay-count']}`, 2)

const print = (obj: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(obj) + '\n') }
const errMsg = (err: unknown): string => err instanceof Error ? err.message : String(err)

/**
 * One incoming file: header, then the bytes into a part file, kept under its
 * final name only when their SHA-256 is the one the header announced. The
 * answer is the SHA-256 computed here, which the sender checks too.
 */
async function receive (stream: any, connection: any, outDir: string): Promise<void> {
  const hash = createHash('sha256')
  let headerBytes = Buffer.alloc(0)
  let header: { sha256: string, name: string } | undefined
  let file: IncomingFile | undefined
  let bytes = 0
  let sha256: string | undefined
  try {
    for await (const chunk of stream) {
      let buf = Buffer.from(chunk.subarray())
      if (header == null) {
        headerBytes = Buffer.concat([headerBytes, buf])
        const nl = headerBytes.indexOf(0x0a)
        if (nl < 0) {
          if (headerBytes.length > MAX_HEADER) throw new Error('header too long')
          continue
        }
        header = parseHeader(headerBytes.subarray(0, nl).toString())
        buf = headerBytes.subarray(nl + 1)
        file = new IncomingFile(outDir, header.name)
      }
      hash.update(buf)
      bytes += buf.length
      await file!.write(buf)
    }
    if (header == null) throw new Error('the stream ended before the header')
    sha256 = hash.digest('hex')
    if (sha256 !== header.sha256) throw new Error(`SHA-256 mismatch after ${bytes} bytes: got ${sha256}, the sender announced ${header.sha256}`)
    await file!.commit()
    stream.send(new TextEncoder().encode(sha256))
    await stream.close()
    print({ event: 'received', file: header.name, bytes, sha256, relayed: isRelayed(connection) })
  } catch (err) {
    await file?.discard()
    print({ event: 'receive_failed', file: header?.name ?? null, bytes, error: errMsg(err) })
    // the sender learns it from the wrong answer (all bytes came, they do not match) or the reset stream
    try {
      if (sha256 != null) { stream.send(new TextEncoder().encode(sha256)); await stream.close() } else stream.abort(err as Error)
    } catch { stream.abort?.(err as Error) }
  }
}

async function listen (): Promise<void> {
  const outDir = await writableDir(values.out!)
  const peer = await createRelayPeer({
    discoveryUrl: values.discovery!,
    relayCount,
    ...(values['api-key'] != null ? { apiKey: values['api-key'] } : {}),
    onEvent: (event) => {
      if (event.type === 'reserved' || event.type === 'reservation_lost') print({ event: event.type, relay: event.relay })
    }
  })
  await peer.node.handle(PROTOCOL, async (stream, connection) => { await receive(stream, connection, outDir) }, { runOnLimitedConnection: true })
  print({ event: 'listening', peer_id: peer.node.peerId.toString(), addrs: peer.relays.circuitAddresses().map(String) })
  process.once('SIGINT', () => { void peer.stop().then(() => process.exit(0)) })
  process.once('SIGTERM', () => { void peer.stop().then(() => process.exit(0)) })
}

async function send (): Promise<void> {
  if (values.peer == null || values.file == null) throw new UsageError('send needs --peer <peer id> and --file <path>')
  // checked before any network work, so a typo costs nothing and says what is wrong
  const path = await readableFile(values.file)
  const announced = await sha256File(path)
  const peer = await createRelayPeer({ discoveryUrl: values.discovery!, relayCount, ...(values['api-key'] != null ? { apiKey: values['api-key'] } : {}) })
  try {
    const conn = await peer.relays.dial(values.peer)
    const stream = await conn.newStream(PROTOCOL, { runOnLimitedConnection: true })
    const hash = createHash('sha256')
    let bytes = 0
    stream.send(new TextEncoder().encode(encodeHeader(announced, basename(path))))
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk)
      bytes += chunk.length
      if (!stream.send(chunk)) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
    }
    await stream.close()
    let answer = ''
    for await (const chunk of stream) answer += new TextDecoder().decode(chunk.subarray())
    const sha256 = hash.digest('hex')
    print({ event: 'sent', bytes, sha256, intact: answer === sha256, relayed: isRelayed(conn) })
    if (answer !== sha256) process.exitCode = 1
  } finally {
    await peer.stop()
  }
}

const command = positionals[0]
try {
  if (command === 'listen') await listen()
  else if (command === 'send') await send()
  else fail('usage: main.ts listen|send --discovery URL [--relay-count N] [--out DIR] [--peer ID --file PATH]', 2)
} catch (err) {
  if (err instanceof UsageError) fail(err.message, 2)
  fail(errMsg(err), 1)
}
