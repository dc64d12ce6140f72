/**
 * `pos-relay run --limits-file` as a process: the file rewritten the way a
 * ConfigMap volume changes (a new file renamed over it), the relay's own poll
 * picks it up (waited for through its metric, not a clock) and the same
 * process enforces the new limit; a bad file is refused with a clear log line
 * and the limit stays.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { noise } from '@pos-relay/shared/noise'
import { yamux } from '@pos-relay/shared/yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { waitFor, scrapeMetric } from '@pos-relay/testing'
import { createLibp2p, type Libp2p } from 'libp2p'
import { hopRequest, RESERVE } from '../../relay-image/test/hop-client.ts'
import { startLocalRelay, type LocalRelay } from './helpers/relay.ts'

const OK = 100
const RESERVATION_REFUSED = 200
/** the relay reads the file every 10 s: room for a few reads on a busy machine */
const POLL_WAIT_MS = 45_000

describe('pos-relay run --limits-file: limits reloaded by the running process', { timeout: 180_000 }, () => {
  let dir: string
  let file: string
  let relay: LocalRelay
  const nodes: Libp2p[] = []

  const write = async (content: unknown): Promise<void> => {
    await writeFile(`${file}.new`, typeof content === 'string' ? content : JSON.stringify(content))
    await rename(`${file}.new`, file)
  }
  const reloads = async (result: string): Promise<number> => await scrapeMetric(relay.metricsPort, new RegExp(`^pos_relay_limits_reloads_total\\{result="${result}"\\} (\\d+)`, 'm'))
  const reserve = async (): Promise<number | undefined> => {
    const node = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()], services: { identify: identify() } })
    nodes.push(node)
    return (await hopRequest(node, relay.addr, RESERVE)).status
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pos-relay-live-'))
    file = join(dir, 'limits.json')
    await write({ limits: { max_reservations: 1 } })
    relay = await startLocalRelay({ dir, args: ['--no-quic', '--max-reservations', '100'], env: { POS_RELAY_LIMITS_FILE: file } })
  })

  after(async () => {
    for (const n of nodes) await n.stop()
    await relay?.proc.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  })

  it('the file wins over the flag at start; raised in the file, the same process admits a second reservation; a bad file keeps the limit', async () => {
    assert.equal(await reserve(), OK)
    assert.equal(await reserve(), RESERVATION_REFUSED)
    assert.equal(await reloads('applied'), 1)

    await write({ limits: { max_reservations: 2 } })
    await waitFor(async () => await reloads('applied') === 2, { timeoutMs: POLL_WAIT_MS, message: 'the relay did not reload its limits file' })
    assert.equal(await reserve(), OK)
    assert.equal(await reserve(), RESERVATION_REFUSED)

    await write({ limits: { max_reservations: 5, handshake_timeout_seconds: 2 } })
    await waitFor(async () => await reloads('invalid') === 1, { timeoutMs: POLL_WAIT_MS, message: 'the bad limits file was not refused' })
    const failed = relay.proc.stderr.map((l) => { try { return JSON.parse(l) } catch { return undefined } }).find((o) => o?.event === 'limits_reload_failed')
    assert.match(failed.err, /limits: Unrecognized key: "handshake_timeout_seconds"/)
    assert.equal(await reserve(), RESERVATION_REFUSED, 'the previous limit (2) stays')
    // still the one process that started
    assert.equal(relay.proc.stdout.filter((l) => l.includes('"relay_ready"')).length, 1)
    assert.equal(await reloads('applied'), 2)
  })
})
