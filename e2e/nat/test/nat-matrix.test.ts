/**
 * NAT lab: every dialer × listener pair of {js, rust, go} through our relay,
 * behind two real NATs (network namespaces + iptables), with each NAT
 * behaviour; DCUtR upgrades where hole punching can work; the relay never sees
 * plaintext. With accounts on (relay with --auth), peers of each
 * implementation get tickets and present them, and a dialer without one is
 * refused. Writes docs/interop.md when the whole matrix ran.
 *
 * Needs root, iproute2, iptables, tcpdump, cargo and go (binaries cached by
 * e2e/interop/build.sh). Run:
 *   npx node --test --test-concurrency=1 'e2e/nat/test/*.test.ts'
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { AUTH_CELLS, authExpectation, expectation } from '../src/expectations.ts'
import { ensureBinaries, IMPLS, runPair, startRelayStack, waitFor, type Binaries, type PairOptions, type PairResult, type RelayStack } from '../src/lab.ts'
import { Report, type Cell } from '../src/report.ts'
import { buildTopology, NS, type NatBehaviour, type Topology } from '../src/topology.ts'

const PAYLOAD = 8 << 20
const DIRECT_TIMEOUT_MS = 10_000
const report = new Report()
let bins: Binaries

before(async () => {
  const t = Date.now()
  bins = await ensureBinaries()
  report.binariesSeconds = (Date.now() - t) / 1000
}, { timeout: 60 * 60_000 })

after(() => {
  if (report.complete()) {
    report.write()
    process.stderr.write('# wrote docs/interop.md\n')
  } else {
    process.stderr.write(`# docs/interop.md not written: only ${report.cells.length} cells ran\n`)
  }
})

function context (r: PairResult, stack: RelayStack): string {
  return `dialer: ${JSON.stringify(r.dialer)}\nlistener: ${JSON.stringify(r.listener)}\nrelay bytes: ${r.relayDelta}\ndialer stderr: ${r.dialerStderr.slice(-12).join('\n')}\nlistener stderr: ${r.listenerStderr.slice(-12).join('\n')}\nrelay stderr: ${stack.relay.stderr.slice(-8).join('\n')}`
}

function check (cell: Cell, r: PairResult, stack: RelayStack): void {
  const { dialer: d, listener: l } = r
  const ctx = context(r, stack)
  assert.equal(d.ok, true, `dialer failed: ${d.error}\n${ctx}`)
  assert.equal(l.ok, true, `listener failed: ${l.error}\n${ctx}`)
  assert.equal(d.bytes, PAYLOAD, ctx)
  assert.equal(l.bytes, PAYLOAD, ctx)
  assert.equal(l.sha256, d.sha256, `payload corrupted\n${ctx}`)
  if (cell.expected.connection === 'direct') {
    assert.equal(d.connection, 'direct', `expected a DCUtR upgrade\n${ctx}`)
    assert.ok(!String(d.remote_addr).includes('/p2p-circuit'), ctx)
    assert.equal(l.connection, 'direct', ctx)
    // the payload flowed, the relay's counter did not follow it
    assert.ok(r.relayDelta < PAYLOAD / 32, `relay counted ${r.relayDelta} bytes during a direct transfer\n${ctx}`)
  } else {
    assert.equal(d.connection, 'relayed', `expected to stay relayed (${cell.expected.reason})\n${ctx}`)
    assert.ok(String(d.remote_addr).includes('/p2p-circuit'), ctx)
    assert.equal(l.connection, 'relayed', ctx)
    assert.ok(r.relayDelta >= PAYLOAD, `relay counted only ${r.relayDelta} bytes of a relayed ${PAYLOAD}-byte transfer\n${ctx}`)
  }
}

/** Captures the relay's interface during a relayed transfer of a marker payload. */
async function plaintextCheck (stack: RelayStack, dialer: 'js' | 'rust', listener: 'js' | 'go', opts: Partial<PairOptions>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pos-relay-pcap-'))
  const pcap = join(dir, 'relay.pcap')
  const marker = `POS-RELAY-PLAINTEXT-MARKER-${randomBytes(8).toString('hex')}`
  // -B: a 32 MiB capture buffer (default 2 MiB), so that a busy machine does not
  // drop packets of the 8 MiB (in and out) under capture; a run on a loaded
  // 2-core machine once captured only 7.4 MB of them
  const dump = spawn('ip', ['netns', 'exec', NS.relay, 'tcpdump', '-i', 'w0', '-U', '-B', '32768', '-s', '0', '-w', pcap, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let dumpErr = ''
  dump.stderr.on('data', (b) => { dumpErr += String(b) })
  const dumpExit = new Promise((resolve) => dump.on('exit', resolve))
  try {
    await waitFor('tcpdump listening', () => dumpErr.includes('listening on') ? true : undefined, 10_000)
    const r = await runPair(dialer, listener, bins, stack, { payloadBytes: 4 << 20, marker, directTimeoutMs: 0, ...opts })
    assert.equal(r.dialer.ok, true, `transfer failed: ${JSON.stringify(r.dialer)} ${r.dialerStderr.slice(-5).join('\n')}`)
    assert.equal(r.dialer.connection, 'relayed', 'the marker transfer must be relayed')
    dump.kill('SIGINT')
    await dumpExit
    const captured = await readFile(pcap)
    const markerFound = captured.includes(Buffer.from(marker))
    const controlFound = captured.includes(Buffer.from('/noise'))
    const passed = !markerFound && controlFound && captured.length > 2 * (4 << 20)
    report.plaintext.push({ pair: `${dialer} → ${listener}`, payloadBytes: 4 << 20, captureBytes: captured.length, markerFound, controlFound, passed })
    assert.ok(controlFound, 'capture has no /noise negotiation: did tcpdump see the relay\'s traffic?')
    assert.ok(captured.length > 2 * (4 << 20), `capture too small (${captured.length} bytes) for a relayed 4 MiB transfer (in and out); tcpdump: ${dumpErr.trim().split('\n').slice(-3).join(' | ')}`)
    assert.ok(!markerFound, 'the relay\'s interface carried the marker in plaintext')
  } finally {
    if (dump.exitCode == null) { dump.kill('SIGKILL'); await dumpExit }
    await rm(dir, { recursive: true, force: true })
  }
}

for (const nat of ['eim', 'symmetric'] as NatBehaviour[]) {
  describe(`NAT: ${nat}`, () => {
    let topo: Topology | undefined
    let stack: RelayStack | undefined
    before(async () => {
      topo = await buildTopology(nat)
      stack = await startRelayStack()
    })
    after(async () => {
      await stack?.stop()
      await topo?.teardown()
    })

    for (const dialer of IMPLS) {
      for (const listener of IMPLS) {
        const expected = expectation(nat, dialer, listener)
        const name = `${dialer} → ${listener}: ${expected.connection}${expected.note != null ? ` (hole punch expected to fail: ${expected.note})` : ''}`
        test(name, { timeout: 120_000 }, async () => {
          const cell: Cell = { nat, dialer, listener, expected, payloadBytes: PAYLOAD, passed: false }
          report.add(cell)
          try {
            cell.result = await runPair(dialer, listener, bins, stack!, { payloadBytes: PAYLOAD, directTimeoutMs: DIRECT_TIMEOUT_MS })
            check(cell, cell.result, stack!)
            cell.passed = true
          } catch (err: any) {
            cell.failure = String(err.message).split('\n')[0]
            throw err
          }
        })
      }
    }

    if (nat === 'eim') {
      test('relay never sees plaintext: js SDK → js SDK (relayed)', { timeout: 120_000 }, async () => {
        await plaintextCheck(stack!, 'js', 'js', {})
      })
      test('relay never sees plaintext: rust → go (relayed, DCUtR off)', { timeout: 120_000 }, async () => {
        await plaintextCheck(stack!, 'rust', 'go', { noDcutr: true })
      })
    }
  })
}

describe('NAT: eim, accounts on (relay with --auth, tickets from discovery)', () => {
  let topo: Topology | undefined
  let stack: RelayStack | undefined
  const accepted = async (): Promise<number> => await stack!.relayMetric('pos_relay_tickets_total{result="ok"}')
  before(async () => {
    topo = await buildTopology('eim')
    stack = await startRelayStack({ accounts: true })
  })
  after(async () => {
    await stack?.stop()
    await topo?.teardown()
  })

  for (const spec of AUTH_CELLS) {
    const expected = authExpectation(spec)
    const name = spec.dialerTicket
      ? `${spec.dialer} → ${spec.listener}, both with tickets: ${expected.connection}${expected.note != null ? ` (hole punch expected to fail: ${expected.note})` : ''}`
      : `${spec.dialer} without a ticket → ${spec.listener} with one: refused (PERMISSION_DENIED)`
    test(name, { timeout: 120_000 }, async () => {
      const cell: Cell = { nat: 'eim', dialer: spec.dialer, listener: spec.listener, expected, payloadBytes: PAYLOAD, passed: false, accounts: { dialerTicket: spec.dialerTicket } }
      report.add(cell)
      try {
        const apiKey = stack!.apiKey!
        const ticketsBefore = await accepted()
        const deniedBefore = await stack!.relayMetric('pos_relay_circuits_total{result="denied"}')
        cell.result = await runPair(spec.dialer, spec.listener, bins, stack!, {
          payloadBytes: PAYLOAD,
          directTimeoutMs: DIRECT_TIMEOUT_MS,
          apiKeys: { listener: apiKey, ...(spec.dialerTicket ? { dialer: apiKey } : {}) },
          // a refused dialer ends at once; the listener then waits for nothing
          ...(spec.dialerTicket ? {} : { timeoutMs: 30_000 })
        })
        cell.accounts!.ticketsAccepted = await accepted() - ticketsBefore
        const denied = await stack!.relayMetric('pos_relay_circuits_total{result="denied"}') - deniedBefore
        const ctx = `tickets accepted: ${cell.accounts!.ticketsAccepted}, circuits denied: ${denied}\n${context(cell.result, stack!)}`
        if (spec.dialerTicket) {
          check(cell, cell.result, stack!)
          // both peers' tickets reached the relay and were accepted (the js SDK presents once per relay connection)
          assert.ok(cell.accounts!.ticketsAccepted >= 2, `the relay accepted ${cell.accounts!.ticketsAccepted} tickets during the cell, fewer than one per peer\n${ctx}`)
          assert.equal(denied, 0, ctx)
        } else {
          assert.equal(cell.result.dialer.ok, false, `a dialer without a ticket got through\n${ctx}`)
          assert.equal(cell.result.dialer.bytes ?? 0, 0, ctx)
          assert.match(String(cell.result.dialer.error), /PERMISSION_DENIED/, `refused for another reason than the missing ticket\n${ctx}`)
          cell.accounts!.refusal = String(cell.result.dialer.error).match(/[^:]*PERMISSION_DENIED[^:]*/)?.[0]?.trim()
          assert.ok(denied >= 1, `the relay counted no denied circuit\n${ctx}`)
          // only the listener presented a ticket
          assert.equal(cell.accounts!.ticketsAccepted, 1, ctx)
          assert.ok(cell.result.relayDelta < 64 * 1024, `the relay carried ${cell.result.relayDelta} bytes for a refused dialer\n${ctx}`)
        }
        cell.passed = true
      } catch (err: any) {
        cell.failure = String(err.message).split('\n')[0]
        throw err
      }
    })
  }
})
