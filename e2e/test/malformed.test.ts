/**
 * Malformed Circuit Relay v2 traffic against a relay process: random and
 * mutated HOP messages, oversized length prefixes, truncated frames, streams
 * opened and abandoned, and a destination answering STOP with garbage. The
 * relay must answer or close, never crash, and keep no state for it:
 * reservations, connections and open file descriptors return to their
 * baseline (deterministic counts, not timings).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { waitFor, scrapeMetric } from '@pos-relay/testing'
import { createLibp2p, type Libp2p } from 'libp2p'
import { connectMessage, HOP, hopRequest, RESERVE, varintFields } from '../../relay-image/test/hop-client.ts'
import { startLocalRelay, type LocalRelay } from './helpers/relay.ts'

const STOP = '/libp2p/circuit/relay/0.2.0/stop'
const ROUNDS = Number(process.env.MALFORMED_ROUNDS ?? 400)

function varint (n: number): number[] {
  const out: number[] = []
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return out
}

/** one malformed payload of a kind chosen by `i` (bytes written raw on the HOP stream) */
function malformed (i: number, target: Libp2p): Uint8Array {
  const valid = i % 2 === 0 ? RESERVE : connectMessage(target.peerId)
  switch (i % 6) {
    case 0: return randomBytes(1 + (i % 64)) // garbage
    case 1: { // a valid message with random bytes flipped, correctly length-prefixed
      const m = Uint8Array.from(valid)
      for (let k = 0; k < 2; k++) m[(i * 7 + k) % m.length]! ^= 1 + (i % 255)
      return Uint8Array.from([...varint(m.length), ...m])
    }
    case 2: return Uint8Array.from(varint(2 ** 31)) // length prefix far past any limit
    case 3: return Uint8Array.from([...varint(valid.length + 50), ...valid]) // truncated frame
    case 4: return Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]) // overlong varint
    default: return Uint8Array.from([...varint(valid.length), ...valid.subarray(0, Math.max(1, valid.length - 3))]) // prefix says more than sent, then abandon
  }
}

const metric = scrapeMetric

const HOP_STATUSES = new Set([100, 200, 201, 202, 203, 204, 400, 401])
/** how long one round may go without an answer or an end before it counts as left hanging (an answer takes milliseconds) */
const ROUND_BOUND_MS = 10_000

/**
 * How the relay answered one round: `status N` (the first length-prefixed
 * reply, a HOP STATUS), `closed` or `reset` (ended with no reply),
 * `garbage` (a reply that is not a HOP STATUS), or `hang` (neither a reply
 * nor an end within ROUND_BOUND_MS).
 */
async function roundOutcome (stream: any): Promise<string> {
  const read = (async () => {
    let buf = Buffer.alloc(0)
    const reply = (): string | undefined => {
      let len = 0; let shift = 0; let i = 0
      while (true) {
        if (i >= buf.length) return undefined
        const b = buf[i++]!
        len += (b & 0x7f) * 2 ** shift
        if ((b & 0x80) === 0) break
        shift += 7
      }
      if (buf.length < i + len) return undefined
      try {
        const fields = varintFields(buf.subarray(i, i + len))
        return fields.get(1) === 2 && HOP_STATUSES.has(fields.get(5)!) ? `status ${fields.get(5)}` : 'garbage'
      } catch { return 'garbage' }
    }
    try {
      for await (const chunk of stream) {
        buf = Buffer.concat([buf, chunk.subarray()])
        const r = reply()
        if (r != null) return r
      }
    } catch {
      return buf.length === 0 ? 'reset' : 'garbage'
    }
    return buf.length === 0 ? 'closed' : 'garbage'
  })()
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([read, new Promise<string>((resolve) => { timer = setTimeout(() => { resolve('hang') }, ROUND_BOUND_MS) })])
  } finally { clearTimeout(timer) }
}

const openFds = async (pid: number): Promise<number> => (await readdir(`/proc/${pid}/fd`)).length

/** every node started, stopped in after() also when an assertion fails (a live node keeps the test process running) */
const nodes: Libp2p[] = []
async function node (): Promise<Libp2p> {
  const n = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
  nodes.push(n)
  return n
}

describe('malformed relay protocol traffic', { timeout: 180_000 }, () => {
  let dir: string
  let relay: LocalRelay

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pos-relay-malformed-'))
    relay = await startLocalRelay({ dir, args: ['--peer-reservations-per-minute', '0', '--peer-circuits-per-minute', '0', '--ip-connections-per-second', '0'] })
  })

  after(async () => {
    for (const n of nodes) await Promise.resolve(n.stop()).catch(() => {})
    await relay?.proc.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it(`survives ${ROUNDS} rounds of malformed HOP and STOP traffic and keeps no state for it`, async () => {
    const legit = await node()
    assert.equal((await hopRequest(legit, relay.addr, RESERVE)).status, 100)
    const baseline = {
      fds: await openFds(relay.proc.child.pid!),
      reservations: await metric(relay.metricsPort, /^pos_relay_reservations_active (\d+)/m),
      connections: await metric(relay.metricsPort, /^pos_relay_connections_active (\d+)/m)
    }

    // a destination with a reservation that answers STOP with garbage, or not at all
    const evilDestination = await node()
    let stopRound = 0
    await evilDestination.handle(STOP, async (stream) => {
      const r = stopRound++
      if (r % 3 === 0) stream.send(randomBytes(1 + (r % 40)))
      else if (r % 3 === 1) stream.send(Uint8Array.from(varint(2 ** 30)))
      if (r % 3 !== 2) await stream.close().catch(() => {})
      else stream.abort(new Error('abandoned'))
    }, { runOnLimitedConnection: true })
    assert.equal((await hopRequest(evilDestination, relay.addr, RESERVE)).status, 100)

    const attacker = await node()
    const outcomes = new Map<string, number>()
    for (let i = 0; i < ROUNDS; i++) {
      const stream = await attacker.dialProtocol(relay.addr, HOP, { runOnLimitedConnection: true })
      const payload = i % 10 === 9 ? connectMessage(evilDestination.peerId) : malformed(i, evilDestination)
      const framed = i % 10 === 9 ? Uint8Array.from([...varint(payload.length), ...payload]) : payload
      stream.send(framed)
      if (i % 4 === 0) { stream.abort(new Error('abandon')); continue } // opened and abandoned
      // not awaited: a close waits for the relay, and roundOutcome bounds the wait
      void stream.close().catch(() => {})
      const outcome = await roundOutcome(stream)
      const kind = i % 10 === 9 ? 'connect' : `case${i % 6}`
      outcomes.set(`${kind} ${outcome}`, (outcomes.get(`${kind} ${outcome}`) ?? 0) + 1)
      if (stream.status === 'open') stream.abort(new Error('done'))
      // every round is answered: never left hanging, never a reply that is not a status
      assert.notEqual(outcome, 'hang', `round ${i} (${kind}): no answer and no end within ${ROUND_BOUND_MS} ms`)
      assert.match(outcome, /^status /, `round ${i} (${kind}): ${outcome} instead of a HOP STATUS`)
      // a CONNECT whose destination answers STOP with garbage or a reset: CONNECTION_FAILED
      if (kind === 'connect') assert.equal(outcome, 'status 203', `round ${i}: a CONNECT to a destination that botched STOP was answered ${outcome}`)
      // frames that cannot be read as a message (oversized or truncated length prefixes, an overlong varint): MALFORMED_MESSAGE
      if (['case2', 'case3', 'case4', 'case5'].includes(kind)) assert.equal(outcome, 'status 400', `round ${i} (${kind}) was answered ${outcome}`)
    }
    await attacker.stop()
    await evilDestination.stop()

    // still serving
    assert.equal((await fetch(`http://127.0.0.1:${relay.metricsPort}/healthz`)).status, 200)
    const fresh = await node()
    assert.equal((await hopRequest(fresh, relay.addr, RESERVE)).status, 100)
    await fresh.stop()

    // nothing left behind (the evil destination's reservation goes with its connection)
    await waitFor(async () => await metric(relay.metricsPort, /^pos_relay_reservations_active (\d+)/m) === baseline.reservations &&
      await metric(relay.metricsPort, /^pos_relay_connections_active (\d+)/m) === baseline.connections &&
      await metric(relay.metricsPort, /^pos_relay_circuits_active (\d+)/m) === 0,
    { timeoutMs: 15_000, intervalMs: 250, message: 'reservations, connections or circuits stayed above baseline' })
    const fds = await openFds(relay.proc.child.pid!)
    assert.ok(fds <= baseline.fds + 2, `open file descriptors grew from ${baseline.fds} to ${fds}`)
    await legit.stop()
    process.stdout.write(`# ${ROUNDS} malformed rounds: ${[...outcomes].map(([k, n]) => `${k}: ${n}`).join(', ')}, ${stopRound} garbage STOP replies; relay fds ${baseline.fds} -> ${fds}\n`)
  })
})
