/**
 * Limits reloaded from the limits file by a running relay (live-limits.ts):
 * a rewritten file is enforced on the next read, in the same relay process
 * with its peers still connected; a bad file is refused and the previous
 * limits stay. `relay.reloadLimits()` is the poll's read, called at once.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, it } from 'node:test'
import { BufferBudget, HopStatus, parseLimitsFile, type RelayServer } from '@pos-relay/relay'
import { connectMessage, hopRequest, RESERVE } from './hop-client.ts'
import { cleanups, metric, peer, relayAddr, reservedListener, runCleanups, startRelay } from './relay-harness.ts'

afterEach(runCleanups)

const reloads = (result: string): RegExp => new RegExp(`pos_relay_limits_reloads_total\\{result="${result}"\\} (\\d+)`)

/** a limits file in a fresh directory; `write` replaces it as a ConfigMap volume does (a new file renamed over it) */
async function limitsFile (content: unknown): Promise<{ path: string, write: (c: unknown) => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'limits-'))
  cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
  const path = join(dir, 'limits.json')
  const write = async (c: unknown): Promise<void> => {
    await writeFile(`${path}.new`, typeof c === 'string' ? c : JSON.stringify(c))
    await rename(`${path}.new`, path)
  }
  await write(content)
  return { path, write }
}

async function connect (relay: RelayServer, dialer: Awaited<ReturnType<typeof peer>>, listener: Awaited<ReturnType<typeof reservedListener>>): Promise<number | undefined> {
  return (await hopRequest(dialer, relayAddr(relay), connectMessage(listener.node.peerId))).status
}

describe('parseLimitsFile', () => {
  it('takes the reloadable fields with the config schema\'s ranges, each optional', () => {
    assert.deepEqual(parseLimitsFile('{"limits":{"max_circuits":5},"rate_limits":{"peer_circuits_per_minute":0}}', 'f'), { limits: { max_circuits: 5 }, rate_limits: { peer_circuits_per_minute: 0 } })
    // absent fields are absent, not the relay's defaults: the relay keeps what it started with
    assert.deepEqual(parseLimitsFile('{}', 'f'), { limits: {}, rate_limits: {} })
  })

  it('refuses a field that needs a restart, an unknown field, a value out of range and text that is not JSON, naming the field', () => {
    assert.throws(() => parseLimitsFile('{"limits":{"handshake_timeout_seconds":3}}', 'f'), /f: limits: Unrecognized key: "handshake_timeout_seconds".*fields that apply without a restart: limits\.max_reservations/)
    assert.throws(() => parseLimitsFile('{"rate_limits":{"redis_url":"redis://x"}}', 'f'), /rate_limits: Unrecognized key: "redis_url"/)
    assert.throws(() => parseLimitsFile('{"limit":{}}', 'f'), /Unrecognized key: "limit"/)
    assert.throws(() => parseLimitsFile('{"limits":{"max_circuits":-1}}', 'f'), /limits\.max_circuits: Too small/)
    assert.throws(() => parseLimitsFile('{"limits":{"max_circuits":1.5}}', 'f'), /limits\.max_circuits/)
    assert.throws(() => parseLimitsFile('{"limits":', 'f'), /f is not valid JSON/)
  })
})

describe('a running relay reloads its limits file', { timeout: 120_000 }, () => {
  it('peer_max_circuits: raised in the file, the same relay admits more circuits; a bad file keeps the raised limit', async () => {
    const file = await limitsFile({ limits: { peer_max_circuits: 1 } })
    const relay = await startRelay({ limits_file: file.path })
    assert.equal(relay.limits.peer_max_circuits, 1, 'the file read at start wins over the config')
    const listener = await reservedListener(relay)
    const dialer = await peer()
    await dialer.dial(relayAddr(relay))
    assert.equal(await connect(relay, dialer, listener), HopStatus.OK)
    assert.equal(await connect(relay, dialer, listener), HopStatus.RESOURCE_LIMIT_EXCEEDED)

    await file.write({ limits: { peer_max_circuits: 3 } })
    assert.equal(await relay.reloadLimits(), 'applied')
    assert.equal(await connect(relay, dialer, listener), HopStatus.OK)
    assert.equal(await connect(relay, dialer, listener), HopStatus.OK)
    assert.equal(await connect(relay, dialer, listener), HopStatus.RESOURCE_LIMIT_EXCEEDED)
    assert.equal(await metric(relay, reloads('applied')), 2)

    // out of range, then a field that needs a restart: refused, counted once each, the limit stays 3
    await file.write({ limits: { peer_max_circuits: -1 } })
    assert.equal(await relay.reloadLimits(), 'invalid')
    assert.equal(await relay.reloadLimits(), 'unchanged', 'the same bad text is not logged or counted again')
    await file.write({ limits: { peer_max_circuits: 1, handshake_timeout_seconds: 2 } })
    assert.equal(await relay.reloadLimits(), 'invalid')
    assert.equal(await metric(relay, reloads('invalid')), 2)
    assert.equal(relay.limits.peer_max_circuits, 3)
    assert.equal(relay.limits.handshake_timeout_seconds, 5)
    // still 3 open, still at the cap
    assert.equal(await connect(relay, dialer, listener), HopStatus.RESOURCE_LIMIT_EXCEEDED)
    // a field removed from the file goes back to the value the relay started with
    await file.write({})
    assert.equal(await relay.reloadLimits(), 'applied')
    assert.equal(relay.limits.peer_max_circuits, 16)
  })

  it('max_reservations: lowered and raised in the file, new reservations follow it and held ones are kept', async () => {
    const file = await limitsFile({ limits: { max_reservations: 1 } })
    const relay = await startRelay({ limits_file: file.path })
    const [a, b] = await Promise.all([peer(), peer()])
    await Promise.all([a.dial(relayAddr(relay)), b.dial(relayAddr(relay))])
    assert.equal((await hopRequest(a, relayAddr(relay), RESERVE)).status, HopStatus.OK)
    assert.equal((await hopRequest(b, relayAddr(relay), RESERVE)).status, HopStatus.RESERVATION_REFUSED)
    await file.write({ limits: { max_reservations: 2 } })
    assert.equal(await relay.reloadLimits(), 'applied')
    assert.equal((await hopRequest(b, relayAddr(relay), RESERVE)).status, HopStatus.OK)
    // lowered below what is held: nobody is evicted, a refresh still passes
    await file.write({ limits: { max_reservations: 1 } })
    assert.equal(await relay.reloadLimits(), 'applied')
    assert.equal((await hopRequest(a, relayAddr(relay), RESERVE)).status, HopStatus.OK)
    assert.equal(await metric(relay, /pos_relay_reservations_active (\d+)/), 2)
    // libp2p's connection cap follows: derived from the limits (1 + 2 × 1024 + 256), then set
    const cap = (): number => (relay.libp2p as any).components.connectionManager.getMaxConnections()
    assert.equal(cap(), 1 + 2 * 1024 + 256)
    await file.write({ limits: { max_reservations: 1, max_connections: 5000 } })
    assert.equal(await relay.reloadLimits(), 'applied')
    assert.equal(cap(), 5000)
  })

  it('peer_circuits_per_minute: a rate switched on in the file refuses the next circuit over it', async () => {
    const file = await limitsFile({})
    const relay = await startRelay({ limits_file: file.path })
    const listener = await reservedListener(relay)
    const dialer = await peer()
    await dialer.dial(relayAddr(relay))
    for (let i = 0; i < 3; i++) assert.equal(await connect(relay, dialer, listener), HopStatus.OK)
    await file.write({ rate_limits: { peer_circuits_per_minute: 1 } })
    assert.equal(await relay.reloadLimits(), 'applied')
    assert.equal(await connect(relay, dialer, listener), HopStatus.OK)
    assert.equal(await connect(relay, dialer, listener), HopStatus.RESOURCE_LIMIT_EXCEEDED)
    assert.equal(await metric(relay, /pos_relay_denials_total\{reason="peer_circuit_rate"\} (\d+)/), 1)
    assert.equal(relay.rateLimits.peer_circuits_per_minute, 1, 'the rate limits in effect report the reloaded value')
  })

  it('a missing file at start is logged and counted, and the relay runs on its configured limits', async () => {
    const relay = await startRelay({ limits_file: join(tmpdir(), 'no-such-dir-pos-relay', 'limits.json') }, { max_circuits: 7 })
    assert.equal(await metric(relay, reloads('invalid')), 1)
    assert.equal(relay.limits.max_circuits, 7)
  })
})

describe('BufferBudget.setLimit (limits.max_buffered_bytes reloaded)', () => {
  it('a budget lowered below what circuits hold stops their reading and refuses new circuits at once; raised, it releases them', () => {
    const held: boolean[] = []
    const windows: number[] = []
    const budget = new BufferBudget(0)
    budget.add({ buffered: () => 1_000_000, hold: (h) => { held.push(h) }, setWindow: (w) => { windows.push(w) } })
    budget.measure()
    assert.equal(budget.exhausted, false)
    budget.setLimit(16 * 1024 ** 2 - 1)
    assert.equal(budget.exhausted, false, '1 MB held is below the new budget')
    budget.setLimit(512 * 1024)
    assert.equal(budget.exhausted, true)
    assert.deepEqual(held, [true])
    assert.equal(windows.at(-1), 128 * 1024, 'the circuit gets the window of the new budget (budget / 4)')
    budget.setLimit(0)
    assert.equal(budget.exhausted, false)
    assert.deepEqual(held, [true, false])
    budget.delete([...(budget as any).circuits][0])
  })

  it('counts what circuits hold outside their stream buffers (sockets\' queues under tickWrites): over the budget with nothing buffered in streams', () => {
    const held: boolean[] = []
    let outside = 0
    const budget = new BufferBudget(1024 * 1024, () => outside)
    budget.add({ buffered: () => 0, hold: (h) => { held.push(h) }, setWindow: () => {} })
    budget.measure()
    assert.equal(budget.exhausted, false)
    outside = 1024 * 1024
    budget.measure()
    assert.equal(budget.exhausted, true, 'a full socket queue did not count')
    assert.equal(budget.bytes, 1024 * 1024)
    outside = 0
    budget.measure()
    assert.deepEqual(held, [true, false])
    budget.delete([...(budget as any).circuits][0])
  })
})
