/**
 * Relay failover (issue 18, docs/protocol.md section 4) with the js, rust and go file-transfer
 * examples: discovery with the production TTL (30 s) and the clients' default poll interval
 * (60 s), three `pos-relay run` relays, a listener with --relay-count 1 and 2. The relay it lives on
 * is SIGKILLed (and, separately, SIGTERMed: a drain); a sender started after the failure, with a
 * list that may still name the dead relay, must deliver a file within 10 s of it, and so must a
 * dialer made before the failure (a JS SDK peer whose list is from before: after a SIGKILL it ranks
 * the dead relay first and must fall back along the target's ranking). The listener moves back when the relay returns, and recovers when every relay is gone and back.
 *
 * The Rust and Go examples come from scripts/build-clients.sh's cache (or POS_RELAY_RUST_FILE_TRANSFER,
 * POS_RELAY_GO_FILE_TRANSFER); missing, their cells skip, or fail under POS_RELAY_REQUIRE_CLIENTS=1.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createRelayPeer, rankRelays, type RelayPeer } from '@pos-relay/client'
import { freePort, startRedis, waitFor, type RedisServer } from '@pos-relay/testing'
import { runCli, spawnCli, type CliProcess } from './helpers/cli.ts'
import { cachedClient, jsonLines, runExample, type ExampleClient } from './helpers/clients.ts'
import { sendToExample } from './helpers/example-protocol.ts'
import type { LineProcess } from '@pos-relay/testing'

/** the bound: reachable again within this after a relay's death or drain */
const REACHABLE_BOUND_MS = 10_000
/** how long a cell keeps trying before it fails (so a slow run reports its time instead of hanging) */
const GIVE_UP_MS = 25_000
const TTL_SECONDS = 30
// the rule (docs/protocol.md section 4): peers move back within a poll interval. A drained relay leaves
// the list at once, so the listener learns of its return only at its next poll: the examples poll at the
// SDK default of 60 s, jittered by up to 10 %
const MOVE_BACK_MS = 60_000 * 1.1 + 9_000

const clients: ExampleClient[] = [
  { name: 'js' },
  cachedClient('rust', 'POS_RELAY_RUST_FILE_TRANSFER'),
  cachedClient('go', 'POS_RELAY_GO_FILE_TRANSFER')
]
// under POS_RELAY_REQUIRE_CLIENTS=1 (make test-clients, CI) a missing binary fails instead of skipping
for (const c of clients) {
  if (c.why != null && process.env.POS_RELAY_REQUIRE_CLIENTS === '1') throw new Error(`POS_RELAY_REQUIRE_CLIENTS=1 but ${c.why}`)
}

/** One relay process that can be killed and started again with the same identity and port. */
class Relay {
  process?: CliProcess
  peerId = ''
  readonly config: string
  readonly port: number
  readonly metricsPort: number
  constructor (config: string, port: number, metricsPort: number) {
    this.config = config; this.port = port; this.metricsPort = metricsPort
  }

  get running (): boolean {
    return this.process != null && this.process.child.exitCode == null && this.process.child.signalCode == null
  }

  async start (): Promise<void> {
    this.process = spawnCli(['run', '--config', this.config, '--host', '127.0.0.1', '--announce', `/ip4/127.0.0.1/tcp/${this.port}`,
      '--metrics-host', '127.0.0.1', '--metrics-port', String(this.metricsPort), '--drain-seconds', '5'])
    const ready = await this.process.waitForJson((o) => o.event === 'relay_ready')
    this.peerId = ready.peer_id
  }
}

/** the relays an example's listener holds a reservation on now, from its reserved / reservation_lost lines */
function holding (listener: LineProcess): Set<string> {
  const held = new Set<string>()
  for (const l of jsonLines(listener)) {
    if (l.event === 'reserved') held.add(l.relay)
    if (l.event === 'reservation_lost') held.delete(l.relay)
  }
  return held
}

let redis: RedisServer
let dir: string
let api: string
let discovery: CliProcess
const dialers: RelayPeer[] = []
const relays: Relay[] = []
const processes: LineProcess[] = []
let file: string

const listedPeers = async (): Promise<string[]> => ((await (await fetch(`${api}/api/p2p/relays`)).json()) as Array<{ peer_id: string }>).map((r) => r.peer_id)

/** every relay up and listed */
async function fleetUp (): Promise<void> {
  for (const r of relays) if (!r.running) await r.start()
  await waitFor(async () => { const listed = await listedPeers(); return relays.every((r) => listed.includes(r.peerId)) }, { timeoutMs: 15_000, message: 'relays not listed' })
}

const byPeer = (id: string): Relay => relays.find((r) => r.peerId === id)!

/**
 * Runs senders one after another until one delivers the file intact to `peer`; returns the time
 * from `since` to that delivery. Each sender is a new process with a fresh (possibly stale) list.
 */
async function deliver (client: ExampleClient, peer: string, relayCount: number, since: number): Promise<number> {
  const errors: string[] = []
  while (Date.now() - since < GIVE_UP_MS) {
    const sender = runExample(client, ['send', '--discovery', api, '--peer', peer, '--file', file, '--relay-count', String(relayCount)], { timeoutMs: 15_000 })
    processes.push(sender)
    const code = await sender.exited
    if (code === 0 && jsonLines(sender).some((l) => l.event === 'sent' && l.intact === true)) return Date.now() - since
    errors.push(`exit ${code}: ${sender.stderr.slice(-3).join(' | ')}`)
  }
  throw new Error(`no sender reached ${peer} within ${GIVE_UP_MS} ms:\n${errors.join('\n')}`)
}

/**
 * A dialer made before the failure (an SDK peer in this process: its discovery list is from before,
 * so after a SIGKILL it still ranks the dead relay first for the target) sends 64 KiB with the
 * examples' protocol; returns ms from `since` until the listener's hash came back right.
 */
async function deliverWith (dialer: RelayPeer, target: string, since: number): Promise<number> {
  const errors: string[] = []
  while (Date.now() - since < GIVE_UP_MS) {
    try {
      const conn = await dialer.relays.dial(target, { signal: AbortSignal.timeout(10_000) })
      if (await sendToExample(conn, 'early-dialer.bin', randomBytes(64 * 1024))) return Date.now() - since
      errors.push('the listener answered a wrong hash')
    } catch (err: any) {
      errors.push(String(err?.message ?? err))
    }
  }
  throw new Error(`the dialer made before the failure did not reach ${target} within ${GIVE_UP_MS} ms:\n${errors.join('\n')}`)
}

async function startListener (client: ExampleClient, relayCount: number): Promise<{ listener: LineProcess, peer: string, ranking: string[] }> {
  const out = join(dir, `out-${client.name}-${relayCount}-${Date.now()}`)
  await mkdir(out)
  const listener = runExample(client, ['listen', '--discovery', api, '--out', out, '--relay-count', String(relayCount)])
  processes.push(listener)
  const listening = await listener.waitForJson((o) => o.event === 'listening', 30_000)
  const peer = String(listening.peer_id)
  const ranking = rankRelays(relays.map((r) => ({ peer_id: r.peerId })), peer).map((r) => r.peer_id)
  await waitFor(() => ranking.slice(0, relayCount).every((id) => holding(listener).has(id)), { timeoutMs: 20_000, message: `${client.name} listener did not reserve on its first ${relayCount} relays: ${JSON.stringify(jsonLines(listener))}` })
  return { listener, peer, ranking }
}

before(async () => {
  redis = await startRedis()
  dir = await mkdtemp(join(tmpdir(), 'pos-relay-failover-'))
  const port = await freePort()
  api = `http://127.0.0.1:${port}`
  discovery = spawnCli(['discovery', '--host', '127.0.0.1', '--port', String(port), '--redis', redis.url, '--ttl', String(TTL_SECONDS)], { env: { P2P_SECRET: 'failover' } })
  await discovery.waitForJson((o) => o.event === 'discovery_ready')
  for (let i = 0; i < 3; i++) {
    const config = join(dir, `relay-${i}.json`)
    const relayPort = await freePort()
    assert.equal((await runCli(['init', '--config', config, '--api-url', api, '--port', String(relayPort)], { input: 'failover\n' })).code, 0)
    relays.push(new Relay(config, relayPort, await freePort()))
  }
  await fleetUp()
  file = join(dir, 'file.bin')
  await writeFile(file, randomBytes(64 * 1024))
})

after(async () => {
  for (const d of dialers) await d.stop().catch(() => {})
  for (const p of processes) await p.kill('SIGKILL')
  for (const r of relays) await r.process?.kill('SIGKILL')
  await discovery?.kill('SIGKILL')
  await redis?.stop()
  await rm(dir, { recursive: true, force: true })
})

for (const client of clients) {
  describe(`failover: the ${client.name} example`, { timeout: 600_000, skip: client.why ?? false }, () => {
    for (const relayCount of [1, 2]) {
      it(`--relay-count ${relayCount}: after SIGKILL, then SIGTERM, of the relay it lives on, a new sender reaches it within ${REACHABLE_BOUND_MS / 1000} s; it moves back when the relay returns`, async () => {
        await fleetUp()
        const { listener, peer, ranking } = await startListener(client, relayCount)
        const earlyDialer = await createRelayPeer({ discoveryUrl: api, relayCount, listen: ['/ip4/127.0.0.1/tcp/0'], reservationTimeoutMs: 10_000 })
        dialers.push(earlyDialer)
        for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
          const dead = byPeer(ranking[0]!)
          const failedAt = Date.now()
          if (signal === 'SIGKILL') await dead.process!.kill('SIGKILL')
          else dead.process!.child.kill('SIGTERM')
          const elapsed = await deliver(client, peer, relayCount, failedAt)
          const early = await deliverWith(earlyDialer, peer, failedAt)
          process.stdout.write(`# ${client.name} relayCount ${relayCount} ${signal}: the dialer made before the failure delivered ${early} ms after it\n`)
          assert.ok(early <= REACHABLE_BOUND_MS, `${client.name} relayCount ${relayCount} ${signal}: the early dialer reached it only after ${early} ms`)
          // the listener moved to the next relays of its ranking
          await waitFor(() => ranking.slice(1, relayCount + 1).every((id) => holding(listener).has(id)), { timeoutMs: GIVE_UP_MS, message: `${client.name} listener did not move: ${JSON.stringify(jsonLines(listener))}` })
          process.stdout.write(`# ${client.name} relayCount ${relayCount} ${signal}: a new sender delivered ${elapsed} ms after the failure\n`)
          assert.ok(elapsed <= REACHABLE_BOUND_MS, `${client.name} relayCount ${relayCount} ${signal}: reachable again only after ${elapsed} ms`)
          assert.equal(await dead.process!.exited, signal === 'SIGKILL' ? 'SIGKILL' : 0)
          // the relay returns (same identity): the listener reserves there again (make-before-break)
          await dead.start()
          await waitFor(() => holding(listener).has(dead.peerId), { timeoutMs: MOVE_BACK_MS, message: `${client.name} listener did not move back: ${JSON.stringify(jsonLines(listener))}` })
        }
        await listener.kill('SIGKILL')
        await earlyDialer.stop()
      })
    }

    it('every relay gone and back: the listener reserves again and a sender reaches it', async () => {
      await fleetUp()
      const { listener, peer, ranking } = await startListener(client, 2)
      await Promise.all(relays.map(async (r) => await r.process!.kill('SIGKILL')))
      await waitFor(() => holding(listener).size === 0, { timeoutMs: 15_000, message: `${client.name} listener still reports reservations: ${JSON.stringify(jsonLines(listener))}` })
      const backAt = Date.now()
      for (const r of relays) await r.start()
      await waitFor(() => ranking.slice(0, 2).every((id) => holding(listener).has(id)), { timeoutMs: 30_000, message: `${client.name} listener did not recover: ${JSON.stringify(jsonLines(listener))}` })
      const elapsed = await deliver(client, peer, 2, backAt)
      process.stdout.write(`# ${client.name} all relays back: a sender delivered ${elapsed} ms after the relays were started again\n`)
      await listener.kill('SIGKILL')
    })
  })
}
