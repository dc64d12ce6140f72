/**
 * Example: two peers exchange a file through a pos-relay relay.
 *
 *   node src/main.ts listen --discovery http://127.0.0.1:8080 --api-key KEY [--out DIR] [--relay-count N]
 *   node src/main.ts send   --discovery http://127.0.0.1:8080 --api-key KEY --peer <peer id> --file PATH [--relay-count N]
 *
 * Both peers find relays through the discovery API. The listener reserves a
 * slot and prints its peer id; the sender dials it through the relay (DCUtR
 * upgrades the connection to a direct one when the NATs allow it). The file
 * goes as `name\n` followed by the bytes; the receiver answers with the
 * SHA-256 it computed, which the sender checks. The listener keeps running and
 * takes any number of files; it prints `reserved` / `reservation_lost` lines as
 * its reservations come and go (failover, docs/protocol.md section 4).
 * `--relay-count` is the listener's relayCount (default 2); a sender given the
 * same number tries relayCount + 2 relays of the listener's ranking.
 */
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { basename, join } from 'node:path'
import { parseArgs } from 'node:util'
import { createRelayPeer, isRelayed } from '@pos-relay/client'

const PROTOCOL = '/pos-relay-example/file/1.0.0'

const { positionals, values } = parseArgs({
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
})

const relayCount = Number(values['relay-count'])
if (!Number.isInteger(relayCount) || relayCount < 1) {
  process.stderr.write(`--relay-count must be a positive integer, not ${values['relay-count']}\n`)
  process.exit(2)
}

const print = (obj: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(obj) + '\n') }

async function listen (): Promise<void> {
  const peer = await createRelayPeer({
    discoveryUrl: values.discovery!,
    relayCount,
    ...(values['api-key'] != null ? { apiKey: values['api-key'] } : {}),
    onEvent: (event) => {
      if (event.type === 'reserved' || event.type === 'reservation_lost') print({ event: event.type, relay: event.relay })
    }
  })
  await peer.node.handle(PROTOCOL, async (stream, connection) => {
    const hash = createHash('sha256')
    let header = ''
    let out: ReturnType<typeof createWriteStream> | undefined
    let bytes = 0
    for await (const chunk of stream) {
      let buf = Buffer.from(chunk.subarray())
      if (out == null) {
        const nl = buf.indexOf(0x0a)
        if (nl < 0) { header += buf.toString(); continue }
        header += buf.subarray(0, nl).toString()
        buf = buf.subarray(nl + 1)
        out = createWriteStream(join(values.out!, 'received-' + basename(header)))
      }
      hash.update(buf)
      bytes += buf.length
      if (!out.write(buf)) await new Promise<void>((resolve) => { out!.once('drain', () => { resolve() }) })
    }
    await new Promise<void>((resolve) => { if (out == null) resolve(); else out.end(() => { resolve() }) })
    const sha256 = hash.digest('hex')
    stream.send(new TextEncoder().encode(sha256))
    await stream.close()
    print({ event: 'received', file: header, bytes, sha256, relayed: isRelayed(connection) })
  }, { runOnLimitedConnection: true })
  print({ event: 'listening', peer_id: peer.node.peerId.toString(), addrs: peer.relays.circuitAddresses().map(String) })
  process.once('SIGINT', () => { void peer.stop().then(() => process.exit(0)) })
  process.once('SIGTERM', () => { void peer.stop().then(() => process.exit(0)) })
}

async function send (): Promise<void> {
  if (values.peer == null || values.file == null) throw new Error('send needs --peer <peer id> and --file <path>')
  const peer = await createRelayPeer({ discoveryUrl: values.discovery!, relayCount, ...(values['api-key'] != null ? { apiKey: values['api-key'] } : {}) })
  try {
    const conn = await peer.relays.dial(values.peer)
    const stream = await conn.newStream(PROTOCOL, { runOnLimitedConnection: true })
    const hash = createHash('sha256')
    let bytes = 0
    stream.send(new TextEncoder().encode(basename(values.file) + '\n'))
    for await (const chunk of createReadStream(values.file)) {
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
if (command === 'listen') await listen()
else if (command === 'send') await send()
else {
  process.stderr.write('usage: main.ts listen|send --discovery URL [--relay-count N] [--out DIR] [--peer ID --file PATH]\n')
  process.exit(2)
}
