/**
 * The relay-wide budget for buffered bytes bounds what stalled circuits hold
 * (issue 12: 1,024 circuits to listeners that never read must keep the
 * relay within its budget; bench/src/stalled-circuits.ts measures the RSS).
 *
 * Holding a circuit stops the relay reading it, not its sender sending: what
 * the relay's yamux window already allowed still arrives. Before each circuit
 * got a window sized to its share of the budget, 16 stalled circuits with an
 * 8 MiB budget held ~16 MiB each (windows grow to 16 MiB on loopback), and a
 * pause made while a resume delivered its backlog was undone by the resume's
 * window update. Asserted on the relay's own accounting
 * (pos_relay_circuit_buffered_bytes, sampled) and on what the senders got
 * out, not on time.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, it } from 'node:test'
import { circuitWindowBytes, HopStatus } from '@pos-relay/relay'
import { waitFor } from '@pos-relay/testing'
import type { Stream } from '@libp2p/interface'
import { connectMessage, hopRequest, RESERVE } from './hop-client.ts'
import { metric, peer, relayAddr, runCleanups, startRelay } from './relay-harness.ts'
import { handleStopPaused } from './stalled-circuit.ts'

afterEach(runCleanups)

const KiB = 1024
const MiB = 1024 * KiB
const BUDGET = 8 * MiB
/** within the default peer_max_circuits, so one dialer opens them all */
const CIRCUITS = 16
/** what each sender would send if nothing held it */
const SIZE = 64 * MiB
/** yamux's initial stream window: granted to every new stream before the relay can set its share */
const INITIAL_WINDOW = 256 * KiB
const buffered = /pos_relay_circuit_buffered_bytes (\d+)/
const circuitsActive = /pos_relay_circuits_active (\d+)/

describe('stalled circuits and the buffer budget', { timeout: 180_000 }, () => {
  it('circuits whose destination never reads stay open and hold no more than the budget plus one initial window each', async (t) => {
    const relay = await startRelay({}, { max_buffered_bytes: BUDGET })
    // a destination that accepts circuits and does not read them until told to
    const atDestination: Stream[] = []
    const received: number[] = []
    const destination = await peer([], { circuitTransport: false })
    await handleStopPaused(destination, (circuit) => { atDestination.push(circuit) })
    assert.equal((await hopRequest(destination, relayAddr(relay), RESERVE)).status, HopStatus.OK)

    const dialer = await peer()
    const sources: Stream[] = []
    for (let i = 0; i < CIRCUITS; i++) {
      const connect = await hopRequest(dialer, relayAddr(relay), connectMessage(destination.peerId))
      assert.equal(connect.status, HopStatus.OK)
      sources.push(connect.stream)
    }
    await waitFor(() => atDestination.length === CIRCUITS, { timeoutMs: 10_000, message: 'not every circuit reached the destination' })

    // every sender pushes until the relay holds it
    const sent = sources.map(() => 0)
    let lastProgress = Date.now()
    let stop = false
    const senders = sources.map(async (stream, i) => {
      const chunk = new Uint8Array(64 * KiB).fill(i)
      while (!stop && sent[i]! < SIZE) {
        const more = stream.send(chunk)
        sent[i]! += chunk.byteLength
        lastProgress = Date.now()
        if (!more) {
          await new Promise<void>((resolve, reject) => {
            stream.addEventListener('drain', () => { resolve() }, { once: true })
            stream.addEventListener('close', (evt) => { reject(evt.error ?? new Error('closed')) }, { once: true })
          })
        }
      }
      await stream.close()
    })
    const failures: Error[] = []
    const sending = Promise.all(senders.map(async (s) => { await s.catch((err: Error) => { failures.push(err) }) }))

    // held: no sender progressed for 2 s (bounded: at most 600 samples)
    let peak = 0
    for (let i = 0; i < 600 && Date.now() - lastProgress < 2000; i++) {
      peak = Math.max(peak, await metric(relay, buffered))
      await sleep(100)
    }
    peak = Math.max(peak, await metric(relay, buffered))
    const total = sent.reduce((a, b) => a + b, 0)
    const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`
    t.diagnostic(`held: the relay buffered ${mib(peak)} at most (sampled), the senders got ${mib(total)} out`)

    assert.ok(total < CIRCUITS * SIZE, 'the senders got everything out while nothing was read')
    assert.equal(failures.length, 0, `circuits failed while stalled: ${failures.map((e) => e.message).join('; ')}`)
    assert.equal(await metric(relay, circuitsActive), CIRCUITS, 'the relay ended stalled circuits')
    const bound = BUDGET + CIRCUITS * INITIAL_WINDOW
    assert.ok(peak <= bound, `the relay held ${mib(peak)} for ${CIRCUITS} stalled circuits (budget ${mib(BUDGET)}, bound ${mib(bound)})`)
    // what got out is held by the relay, by the destination (its initial
    // window per circuit) or is on its way: a sender the relay lets run
    // fills its 64 MiB
    const outBound = bound + CIRCUITS * (INITIAL_WINDOW + 128 * KiB)
    assert.ok(total <= outBound, `the senders got ${mib(total)} out while nothing was read (bound ${mib(outBound)})`)

    // the senders stop where they are and close; the destination reads
    // again: every byte arrives, none is lost to the pauses and resumes
    stop = true
    const closed = atDestination.map(async (circuit, i) => {
      received[i] = 0
      const end = new Promise<void>((resolve) => {
        circuit.addEventListener('remoteCloseWrite', () => { resolve() }, { once: true })
        circuit.addEventListener('close', () => { resolve() }, { once: true })
      })
      circuit.addEventListener('message', (evt) => { received[i]! += evt.data.byteLength })
      circuit.resume()
      await end
    })
    await sending
    assert.equal(failures.length, 0, `circuits failed once read: ${failures.map((e) => e.message).join('; ')}`)
    await Promise.race([Promise.all(closed), sleep(60_000, undefined, { ref: false })])
    assert.deepEqual(received, sent, 'not every byte sent arrived')
  })
})

describe('circuitWindowBytes', () => {
  it('shares the budget among open circuits, four windows each, within 64 KiB .. 16 MiB', () => {
    assert.equal(circuitWindowBytes(256 * MiB, 1024), 64 * KiB)
    assert.equal(circuitWindowBytes(256 * MiB, 256), 256 * KiB)
    assert.equal(circuitWindowBytes(256 * MiB, 1), 16 * MiB)
    assert.equal(circuitWindowBytes(256 * MiB, 0), 16 * MiB)
    assert.equal(circuitWindowBytes(1 * MiB, 1024), 64 * KiB)
    // no budget: yamux's own maximum
    assert.equal(circuitWindowBytes(0, 1024), 16 * MiB)
  })
})
