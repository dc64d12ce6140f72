import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import {
  createMemoryUsageSink,
  createRedisUsageSink,
  monthlyBytes,
  queryUsage,
  UsageMeter,
  usageToCsv,
  type UsageRow,
  type UsageSink,
} from '@pos-relay/accounts'
import { seededRandom, startRedis, useRedis, waitFor } from '@pos-relay/testing'
import { sleep } from './fixtures.ts'

const ACCOUNTS = ['acc_aaaaaaaaaaaaaaaa', 'acc_bbbbbbbbbbbbbbbb', 'acc_cccccccccccccccc']
const H0 = Date.parse('2030-03-31T22:00:00.000Z') // three hours spanning a month boundary

interface Totals { bto: number, bts: number, circuits: number, circuitMs: number, reservationMs: number }
const zero = (): Totals => ({ bto: 0, bts: 0, circuits: 0, circuitMs: 0, reservationMs: 0 })

/** Expected sums per `account|hour` kept by the test, in exact integers. */
class Ledger {
  readonly cells = new Map<string, Totals>()
  add (account: string, at: Date, d: { bytes_to_destination: number, bytes_to_source: number, circuits: number, circuit_seconds: number, reservation_seconds: number }): void {
    const k = `${account}|${at.toISOString().slice(0, 13)}:00:00.000Z`
    const t = this.cells.get(k) ?? zero()
    t.bto += d.bytes_to_destination
    t.bts += d.bytes_to_source
    t.circuits += d.circuits
    t.circuitMs += Math.round(d.circuit_seconds * 1000)
    t.reservationMs += Math.round(d.reservation_seconds * 1000)
    this.cells.set(k, t)
  }

  rows (): UsageRow[] {
    return [...this.cells.entries()]
      .map(([k, t]) => {
        const [account, hour] = k.split('|') as [string, string]
        return { account, hour, bytes_to_destination: t.bto, bytes_to_source: t.bts, circuits: t.circuits, circuit_seconds: t.circuitMs / 1000, reservation_seconds: t.reservationMs / 1000 }
      })
      .filter((r) => r.bytes_to_destination + r.bytes_to_source + r.circuits + r.circuit_seconds + r.reservation_seconds > 0)
      .sort((a, b) => (a.hour < b.hour ? -1 : a.hour > b.hour ? 1 : a.account < b.account ? -1 : 1))
  }
}

/** Random usage: bytes up to 1 MiB (sometimes huge), fractional seconds with ms precision. */
function randomAdds (seed: number) {
  const r = seededRandom(seed)
  return () => {
    const account = ACCOUNTS[Math.floor(r() * ACCOUNTS.length)] as string
    const at = new Date(H0 + Math.floor(r() * 3 * 3600_000))
    const delta = {
      bytes_to_destination: r() < 0.01 ? 2 ** 40 + Math.floor(r() * 1000) : Math.floor(r() * 1_048_576),
      bytes_to_source: Math.floor(r() * 65_536),
      circuits: r() < 0.3 ? 1 : 0,
      circuit_seconds: Math.floor(r() * 5000) / 1000,
      reservation_seconds: Math.floor(r() * 2000) / 1000,
    }
    return { account, at, delta }
  }
}

const range = { from: new Date(H0), to: new Date(H0 + 3 * 3600_000) }

/** A sink that can be switched off, and can "time out" after its write landed. */
function flaky (inner: UsageSink) {
  const state = { down: false, landThenFail: 0, applied: [] as string[] }
  const sink: UsageSink = {
    async apply (id, rows) {
      if (state.down) throw new Error('sink down')
      const applied = await inner.apply(id, rows)
      state.applied.push(id)
      if (state.landThenFail > 0) {
        state.landThenFail--
        throw new Error('timeout (but the write landed)')
      }
      return applied
    },
    query: (q) => inner.query(q),
    monthlyBytes: (a, at) => inner.monthlyBytes(a, at),
    close: () => inner.close(),
  }
  return { sink, state }
}

function meteringSuite (name: string, makeSink: () => UsageSink | Promise<UsageSink>): void {
  describe(`metering exactness: ${name}`, () => {
    it('totals are exact over many adds and flushes', async () => {
      const sink = await makeSink()
      const meter = new UsageMeter({ sink, relayId: 'relay-1', maxRowsPerBatch: 4 })
      const ledger = new Ledger()
      const next = randomAdds(1)
      for (let i = 0; i < 5000; i++) {
        const { account, at, delta } = next()
        meter.add(account, delta, at)
        ledger.add(account, at, delta)
        if (i % 97 === 0) await meter.flush()
      }
      await meter.stop()
      assert.equal(meter.pendingBatches(), 0)
      assert.deepEqual(await sink.query(range), ledger.rows())
      assert.ok(meter.stats().flushed_batches > 50)
      await sink.close()
    })

    it('a batch applied twice with the same id counts once', async () => {
      const sink = await makeSink()
      const row: UsageRow = { account: ACCOUNTS[0] as string, hour: new Date(H0).toISOString(), bytes_to_destination: 10, bytes_to_source: 5, circuits: 1, circuit_seconds: 1.5, reservation_seconds: 2 }
      assert.equal(await sink.apply('relay-1:boot:0', [row]), true)
      assert.equal(await sink.apply('relay-1:boot:0', [row]), false)
      assert.equal(await sink.apply('relay-1:boot:1', [row]), true)
      const [got] = await sink.query({ account: row.account, ...range })
      assert.deepEqual(got, { ...row, bytes_to_destination: 20, bytes_to_source: 10, circuits: 2, circuit_seconds: 3, reservation_seconds: 4 })
      assert.equal(await sink.monthlyBytes(row.account, new Date(H0)), 30)
      await sink.close()
    })

    it('a flush that timed out after landing is retried with the same id and counted once', async () => {
      const { sink, state } = flaky(await makeSink())
      const meter = new UsageMeter({ sink, relayId: 'relay-1' })
      meter.add(ACCOUNTS[0] as string, { bytes_to_destination: 1000, circuits: 1 }, new Date(H0))
      state.landThenFail = 1
      await assert.rejects(meter.flush(), /timeout/)
      assert.equal(meter.pendingBatches(), 1)
      meter.add(ACCOUNTS[0] as string, { bytes_to_destination: 1 }, new Date(H0))
      await meter.flush()
      assert.equal(state.applied[0], state.applied[1], 'the retry reuses the batch id')
      assert.equal(meter.stats().duplicate_batches, 1)
      const [row] = await sink.query({ account: ACCOUNTS[0], ...range })
      assert.equal(row?.bytes_to_destination, 1001)
      assert.equal(row?.circuits, 1)
    })

    it('an outage loses nothing: batches wait, bounded by merging only never-attempted ones, and replay in order', async () => {
      const { sink, state } = flaky(await makeSink())
      const meter = new UsageMeter({ sink, relayId: 'relay-1', maxPendingBatches: 5 })
      const ledger = new Ledger()
      const next = randomAdds(2)
      const addSome = (n: number) => {
        for (let i = 0; i < n; i++) {
          const { account, at, delta } = next()
          meter.add(account, delta, at)
          ledger.add(account, at, delta)
        }
      }
      addSome(50)
      await meter.flush()
      state.down = true
      for (let round = 0; round < 40; round++) {
        addSome(20)
        await assert.rejects(meter.flush())
        assert.ok(meter.pendingBatches() <= 6, `pending ${meter.pendingBatches()}`)
      }
      assert.ok(meter.stats().merged_batches > 0)
      assert.ok(meter.unflushedMonthlyBytes(ACCOUNTS[0] as string, new Date(H0)) > 0)
      state.down = false
      state.landThenFail = 1 // the first write after the outage lands but reports a timeout
      await assert.rejects(meter.flush())
      const firstFailedId = state.applied[state.applied.length - 1]
      await meter.flush()
      assert.equal(state.applied.filter((id) => id === firstFailedId).length, 2, 'retried with the same id')
      assert.equal(meter.pendingBatches(), 0)
      assert.equal(meter.unflushedMonthlyBytes(ACCOUNTS[0] as string, new Date(H0)), 0)
      assert.deepEqual(await sink.query(range), ledger.rows())
    })

    it('monthly bytes follow the UTC calendar month', async () => {
      const sink = await makeSink()
      const meter = new UsageMeter({ sink, relayId: 'm' })
      const a = ACCOUNTS[1] as string
      meter.add(a, { bytes_to_destination: 100, bytes_to_source: 20 }, new Date('2030-03-31T23:59:59.999Z'))
      meter.add(a, { bytes_to_destination: 7 }, new Date('2030-04-01T00:00:00.000Z'))
      assert.equal(meter.unflushedMonthlyBytes(a, new Date('2030-03-15T00:00:00Z')), 120)
      await meter.flush()
      assert.equal(meter.unflushedMonthlyBytes(a, new Date('2030-03-15T00:00:00Z')), 0)
      assert.equal(await sink.monthlyBytes(a, new Date('2030-03-01T00:00:00Z')), 120)
      assert.equal(await sink.monthlyBytes(a, new Date('2030-04-30T00:00:00Z')), 7)
      assert.equal(await monthlyBytes({ sink }, a, new Date('2030-04-02T00:00:00Z')), 7)
      assert.equal(await sink.monthlyBytes('acc_nobody', new Date('2030-04-02T00:00:00Z')), 0)
    })

    it('queries by account and time range; CSV export', async () => {
      const sink = await makeSink()
      const meter = new UsageMeter({ sink, relayId: 'q' })
      meter.add('acc_aaaaaaaaaaaaaaaa', { bytes_to_destination: 1, circuit_seconds: 0.25 }, new Date(H0))
      meter.add('acc_bbbbbbbbbbbbbbbb', { bytes_to_source: 2, circuits: 3 }, new Date(H0 + 30 * 60_000))
      meter.add('acc_aaaaaaaaaaaaaaaa', { reservation_seconds: 60 }, new Date(H0 + 2 * 3600_000))
      await meter.flush()
      const all = await queryUsage({ sink, ...range })
      assert.deepEqual(all.map((r) => [r.account, r.hour]), [
        ['acc_aaaaaaaaaaaaaaaa', '2030-03-31T22:00:00.000Z'],
        ['acc_bbbbbbbbbbbbbbbb', '2030-03-31T22:00:00.000Z'],
        ['acc_aaaaaaaaaaaaaaaa', '2030-04-01T00:00:00.000Z'],
      ])
      const onlyA = await queryUsage({ sink, account: 'acc_aaaaaaaaaaaaaaaa', from: new Date(H0 + 10 * 60_000), to: new Date(H0 + 3600_000) })
      assert.deepEqual(onlyA, [{ account: 'acc_aaaaaaaaaaaaaaaa', hour: '2030-03-31T22:00:00.000Z', bytes_to_destination: 1, bytes_to_source: 0, circuits: 0, circuit_seconds: 0.25, reservation_seconds: 0 }])
      assert.deepEqual(await queryUsage({ sink, account: 'acc_aaaaaaaaaaaaaaaa', from: new Date(H0 + 3600_000), to: new Date(H0 + 2 * 3600_000) }), [])
      assert.equal(usageToCsv(all), [
        'account,hour,bytes_to_destination,bytes_to_source,circuits,circuit_seconds,reservation_seconds',
        'acc_aaaaaaaaaaaaaaaa,2030-03-31T22:00:00.000Z,1,0,0,0.25,0',
        'acc_bbbbbbbbbbbbbbbb,2030-03-31T22:00:00.000Z,0,2,3,0,0',
        'acc_aaaaaaaaaaaaaaaa,2030-04-01T00:00:00.000Z,0,0,0,0,60',
        '',
      ].join('\n'))
      await assert.rejects(sink.query({ from: range.to, to: range.from }), RangeError)
      await assert.rejects(sink.query({ from: new Date(0), to: new Date(H0) }), RangeError)
      await assert.rejects(sink.query({ account: 'bad id!', ...range }), RangeError)
    })
  })
}

meteringSuite('memory sink', () => createMemoryUsageSink())

describe('redis usage sink', () => {
  const sinks: UsageSink[] = []
  // declared before useRedis: hooks run in declaration order, so the sinks close before Redis stops
  after(async () => {
    await Promise.all(sinks.map((s) => s.close()))
  })
  const redis = useRedis()
  meteringSuite('redis sink', () => {
    const s = createRedisUsageSink({ redisUrl: redis.url, keyPrefix: `usage-${randomUUID()}:` })
    sinks.push(s)
    return s
  })

  it('keeps big integers exact and writes the documented layout', async () => {
    const prefix = `big-${randomUUID()}:`
    const sink = createRedisUsageSink({ redisUrl: redis.url, keyPrefix: prefix })
    sinks.push(sink)
    const big = 2 ** 52 + 1
    const row = { account: 'acc_aaaaaaaaaaaaaaaa', hour: new Date(H0).toISOString(), bytes_to_destination: big, bytes_to_source: 1, circuits: 0, circuit_seconds: 0, reservation_seconds: 0 }
    await sink.apply('b:0', [row])
    const [got] = await queryUsage({ redisUrl: redis.url, keyPrefix: prefix, ...range })
    assert.equal(got?.bytes_to_destination, big)
    assert.equal(await monthlyBytes({ redisUrl: redis.url, keyPrefix: prefix }, row.account, new Date(H0)), big + 1)
    const { Redis } = await import('ioredis')
    const raw = new Redis(redis.url)
    try {
      assert.deepEqual((await raw.keys(`${prefix}*`)).sort(), [
        `${prefix}flush:b:0`,
        `${prefix}quota:acc_aaaaaaaaaaaaaaaa:2030-03`,
        `${prefix}usage-hour:2030-03-31T22`,
        `${prefix}usage:acc_aaaaaaaaaaaaaaaa:2030-03-31T22`,
      ])
      const ttl = await raw.ttl(`${prefix}flush:b:0`)
      assert.ok(ttl > 2 * 86400 - 60, `flush marker ttl ${ttl}`)
      assert.equal(await raw.hget(`${prefix}usage:acc_aaaaaaaaaaaaaaaa:2030-03-31T22`, 'bytes_to_destination'), String(big))
    } finally {
      raw.disconnect()
    }
  })
})

describe('redis killed mid-run', () => {
  it('nothing lost, nothing doubled: totals exact after Redis is SIGKILLed and restarted under load', { timeout: 60_000 }, async () => {
    // Redis with an fsync-always AOF in a directory that survives the restart (a production-like Redis)
    const dir = await mkdtemp(join(tmpdir(), 'pos-relay-usage-aof-'))
    const own = await startRedis({ args: ['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always'] })
    const sink = createRedisUsageSink({ redisUrl: own.url, commandTimeoutMs: 500 })
    const meter = new UsageMeter({ sink, relayId: 'relay-k', flushIntervalMs: 25 })
    const ledger = new Ledger()
    const next = randomAdds(3)
    try {
      meter.start()
      let stop = false
      const load = (async () => {
        while (!stop) {
          for (let i = 0; i < 20; i++) {
            const { account, at, delta } = next()
            meter.add(account, delta, at)
            ledger.add(account, at, delta)
          }
          await sleep(2)
        }
      })()
      await sleep(500)
      await own.kill()
      await waitFor(() => meter.pendingBatches() > 3, { timeoutMs: 5000, message: 'flushes never failed' })
      assert.ok(meter.stats().failed_flushes > 0)
      await sleep(300)
      await own.restart()
      await sleep(500)
      stop = true
      await load
      await waitFor(async () => {
        await meter.flush().catch(() => {})
        return meter.pendingBatches() === 0
      }, { timeoutMs: 15_000, message: 'pending batches never drained' })
      await meter.stop()
      const stats = meter.stats()
      assert.ok(stats.flushed_batches > 10, JSON.stringify(stats))
      assert.deepEqual(await sink.query(range), ledger.rows())
      const expectedMonth = ledger.rows().filter((r) => r.account === ACCOUNTS[0] && r.hour.startsWith('2030-03')).reduce((s, r) => s + r.bytes_to_destination + r.bytes_to_source, 0)
      assert.equal(await sink.monthlyBytes(ACCOUNTS[0] as string, new Date(H0)), expectedMonth)
    } finally {
      await meter.stop().catch(() => {})
      await sink.close()
      await own.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('UsageMeter input checks', () => {
  it('rejects bad accounts and deltas without changing its state', async () => {
    const sink = createMemoryUsageSink()
    const meter = new UsageMeter({ sink, relayId: 'v' })
    for (const [account, delta] of [
      ['', {}],
      ['has space', {}],
      ['a:b', {}],
      ['acc_1', { bytes_to_destination: -1 }],
      ['acc_1', { bytes_to_destination: 1.5 }],
      ['acc_1', { circuits: Number.NaN }],
      ['acc_1', { circuit_seconds: -0.1 }],
      ['acc_1', { reservation_seconds: Infinity }],
      ['acc_1', { bytes_to_source: '5' }],
    ] as [string, object][]) {
      assert.throws(() => meter.add(account, delta as never), TypeError)
    }
    assert.throws(() => meter.add('acc_1', {}, new Date('nope')), TypeError)
    await meter.flush()
    assert.equal(sink.appliedBatches(), 0)
    assert.throws(() => new UsageMeter({ sink, relayId: '' }), TypeError)
  })
})
