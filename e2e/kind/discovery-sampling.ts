/**
 * The kind suite's discovery sampling and reachability helpers (issue 18):
 * which of the example pool's relays discovery lists, the fewest listed while
 * something disruptive runs, and how soon a new SDK sender reaches a peer
 * whose relay went away. Used by kind.test.ts.
 */
import assert from 'node:assert/strict'
import { createRelayPeer, isRelayed, type RelayPeer } from '@pos-relay/client'
import { EXAMPLE_POOL, listRelays } from '../shared/relaypool.ts'
import { sendToSink } from '../test/helpers/transfer.ts'
import { DISCOVERY_URL, NAMESPACE } from './kind.ts'

/** the relays of the example pool that discovery lists now */
export async function listedPoolRelays (): Promise<string[]> {
  return (await listRelays(DISCOVERY_URL)).filter((r) => r.id.startsWith(`${NAMESPACE}:${EXAMPLE_POOL}:`)).map((r) => r.id)
}

/**
 * Samples discovery every 250 ms while `during` runs; returns the fewest
 * relays of the pool listed at any sample.
 */
export async function fewestListedWhile (during: () => Promise<void>): Promise<{ fewest: number, samples: number }> {
  let fewest = Infinity
  let samples = 0
  let done = false
  const sampler = (async () => {
    while (!done) {
      const n = (await listedPoolRelays().catch(() => [])).length
      fewest = Math.min(fewest, n)
      samples++
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  })()
  try { await during() } finally { done = true; await sampler }
  return { fewest, samples }
}

/** issue 18's bound: a peer whose relay goes away is reachable again through another within this */
export const REACHABLE_BOUND_MS = 10_000

/**
 * From `since` on, a new SDK sender (relayCount 1, fresh discovery list) dials
 * `target` and delivers 64 KiB, again and again until one succeeds (at most
 * 30 s): how long after `since` that took, and through which relay.
 */
export async function reachableAgain (target: string, since: number): Promise<{ ms: number, relay: string, attempts: number }> {
  const errors: string[] = []
  for (let attempt = 1; ; attempt++) {
    let sender: RelayPeer | undefined
    try {
      sender = await createRelayPeer({ discoveryUrl: DISCOVERY_URL, relayCount: 1, listen: ['/ip4/127.0.0.1/tcp/0'], reservationTimeoutMs: 10_000 })
      const conn = await sender.relays.dial(target, { signal: AbortSignal.timeout(5_000) })
      assert.ok(isRelayed(conn), `not relayed: ${conn.remoteAddr.toString()}`)
      const { sent, received } = await sendToSink(conn, 64 * 1024)
      assert.deepEqual(received, sent, 'the payload arrived changed')
      return { ms: Date.now() - since, relay: /\/p2p\/([^/]+)\/p2p-circuit/.exec(conn.remoteAddr.toString())?.[1] ?? '?', attempts: attempt }
    } catch (err: any) {
      errors.push(`attempt ${attempt} at +${Date.now() - since} ms: ${String(err.message ?? err).split('\n')[0]}`)
      if (Date.now() - since > 30_000) throw new Error(`no sender reached ${target} within 30 s:\n${errors.join('\n')}`)
      await new Promise((resolve) => setTimeout(resolve, 250))
    } finally {
      await sender?.stop().catch(() => {})
    }
  }
}
