/**
 * Patch noise-tcp-datapath: the upstream write pattern its levers are built
 * on (this test fails when upstream changes it: re-check the patch), and
 * every lever carrying data intact both ways, with half-close, between two
 * real libp2p nodes over TCP + Noise + yamux.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { afterEach, test } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p, type Libp2p } from 'libp2p'
import { checkDataPathVersions, patchDataPath, type DataPathLevers } from '@pos-relay/upstream-patches/noise-tcp-datapath'
import type { StreamMuxerFactory } from '@libp2p/interface'

const nodes: Libp2p[] = []
afterEach(async () => { while (nodes.length > 0) await nodes.pop()!.stop() })

/** writes: calls into the socket's handle (_write, _writev), one syscall each; writevs: the _writev ones (a corked batch) */
interface Seen { writes: number, writevs: number, messages: number, patched: boolean[] }

/** upstream yamux whose connections get `levers` (none: unpatched), counting socket writes and Noise messages sent */
function muxer (levers: DataPathLevers, seen: Seen): () => StreamMuxerFactory {
  const upstream = yamux()
  return () => {
    const factory = upstream()
    const create = factory.createStreamMuxer.bind(factory)
    factory.createStreamMuxer = (maConn: any) => {
      seen.patched.push(patchDataPath(maConn, levers))
      const socket = maConn.stream?.socket
      if (socket != null) {
        // what reaches the handle: one _write per chunk, or one _writev per corked batch
        for (const m of ['_write', '_writev']) {
          const write = socket[m]
          socket[m] = function (...args: any[]) { seen.writes++; if (m === '_writev') seen.writevs++; return write.apply(this, args) }
        }
      }
      const encrypt = maConn.encrypt
      maConn.encrypt = function (chunk: any) { const out = encrypt.call(this, chunk); seen.messages += Math.ceil(chunk.byteLength / 65519); return out }
      return create(maConn)
    }
    return factory
  }
}

async function node (levers: DataPathLevers, seen: Seen, listen: string[] = []): Promise<Libp2p> {
  const n = await createLibp2p({ addresses: { listen }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [muxer(levers, seen)] })
  nodes.push(n)
  return n
}

/** `bytes` random bytes sent in 16 KiB writes honouring drain; the far side echoes its SHA-256 and byte count after the half-close */
async function roundTrip (levers: DataPathLevers, bytes: number): Promise<{ sender: Seen, ok: boolean }> {
  const sender: Seen = { writes: 0, writevs: 0, messages: 0, patched: [] }
  const receiver: Seen = { writes: 0, writevs: 0, messages: 0, patched: [] }
  const b = await node(levers, receiver, ['/ip4/127.0.0.1/tcp/0'])
  const a = await node(levers, sender)
  await b.handle('/sink/1', async (stream) => {
    const h = createHash('sha256')
    let n = 0
    for await (const c of stream) { h.update(c.subarray()); n += c.byteLength }
    stream.send(new TextEncoder().encode(`${n} ${h.digest('hex')}`))
    await stream.close()
  })
  const payload = randomBytes(bytes)
  const stream = await a.dialProtocol(b.getMultiaddrs()[0]!, '/sink/1')
  for (let off = 0; off < bytes; off += 16384) {
    if (!stream.send(payload.subarray(off, off + 16384))) await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
  }
  await stream.close()
  let reply = ''
  for await (const c of stream) reply += new TextDecoder().decode(c.subarray())
  assert.deepEqual(sender.patched, [DATAPATH_ANY(levers)])
  return { sender, ok: reply === `${bytes} ${createHash('sha256').update(payload).digest('hex')}` }
}
const DATAPATH_ANY = (l: DataPathLevers): boolean => Object.values(l).some((x) => x === true)

test('the installed @chainsafe/libp2p-noise, @libp2p/tcp and @libp2p/utils are the versions the patch was written for', () => {
  checkDataPathVersions()
})

// The shape the levers exist for. When this fails, upstream writes differently: re-measure (npm run bench:relay-cpu) and re-check the patch.
test('upstream: every Noise message goes out in several socket writes (length, header, body, tag)', async () => {
  const { sender, ok } = await roundTrip({}, 4 * 1024 * 1024)
  assert.ok(ok)
  assert.ok(sender.writes >= 3 * sender.messages, `${sender.writes} socket writes for ${sender.messages} Noise messages`)
})

for (const levers of [{ writev: true }, { tickWrites: true }, { noiseDecrypt: true }, { noiseBatch: true }, { tickWrites: true, noiseBatch: true, noiseDecrypt: true }] satisfies DataPathLevers[]) {
  test(`patched (${Object.keys(levers).join(' + ')}): 16 MiB arrive intact, the half-close and the reply pass`, async (t) => {
    const { sender, ok } = await roundTrip(levers, 16 * 1024 * 1024)
    assert.ok(ok, 'received bytes differ from the sent ones')
    t.diagnostic(`${sender.writes} socket writes (${sender.writevs} writev) for ${sender.messages} Noise messages`)
    // the lever's effect: corked batches go out as one writev each, so far fewer write syscalls than upstream's >= 3 per message
    if (levers.writev === true || levers.tickWrites === true) {
      assert.ok(sender.writevs > 0, 'no writev: the socket was never corked')
      assert.ok(sender.writes < 2 * sender.messages, `${sender.writes} socket writes for ${sender.messages} Noise messages`)
      // tickWrites: one writev per tick, several messages each (measured: 20 writes for 1031 messages)
      if (levers.tickWrites === true) assert.ok(sender.writes * 4 < sender.messages, `tickWrites: ${sender.writes} socket writes for ${sender.messages} Noise messages`)
    }
  })
}

test('a connection that is not Noise over TCP is left alone', () => {
  assert.equal(patchDataPath({ sendData: () => ({ sentBytes: 0, canSendMore: true }) }, { writev: true }), false)
  assert.equal(patchDataPath({}, {}), false)
})
