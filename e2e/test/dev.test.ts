import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createRelayPeer } from '@pos-relay/client'
import { freePort, waitFor } from '@pos-relay/testing'
import { spawnCli } from './helpers/cli.ts'
import { sendToSink, serveSink } from './helpers/transfer.ts'

describe('pos-relay dev', { timeout: 60_000 }, () => {
  it('runs discovery and a relay in one command that SDK peers can use, and stops cleanly', async () => {
    const [port, relayPort, metricsPort] = [await freePort(), await freePort(), await freePort()]
    const dev = spawnCli(['dev', '--port', String(port), '--relay-port', String(relayPort), '--metrics-port', String(metricsPort)])
    try {
      await waitFor(() => dev.stdout.some((l) => l.includes('relay address:')), { timeoutMs: 20_000, message: 'dev never printed its addresses' })
      const url = `http://127.0.0.1:${port}`
      assert.ok(dev.stdout.some((l) => l.includes(`${url}/api/p2p/relays`)), dev.stdout.join('\n'))
      assert.ok(dev.stdout.some((l) => l.includes(`/ip4/127.0.0.1/tcp/${relayPort}/p2p/12D3KooW`)), dev.stdout.join('\n'))
      const relays = await (await fetch(`${url}/api/p2p/relays`)).json() as any[]
      assert.equal(relays.length, 1)

      // accounts are on in dev: without a ticket the relay refuses, with the dev API key it serves
      const apiKey = /dev API key:\s+(\S+)/.exec(dev.stdout.join('\n'))?.[1]
      assert.ok(apiKey != null, 'dev printed no API key')
      await assert.rejects(createRelayPeer({ discoveryUrl: url, listen: ['/ip4/127.0.0.1/tcp/0'], reservationTimeoutMs: 3000 }).then(async (p) => { await p.stop() }), /no relay reservation/)
      const a = await createRelayPeer({ discoveryUrl: url, apiKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
      const b = await createRelayPeer({ discoveryUrl: url, apiKey, listen: ['/ip4/127.0.0.1/tcp/0'] })
      try {
        await serveSink(a.node)
        const { sent, received } = await sendToSink(await b.relays.dial(a.node.peerId), 512 * 1024)
        assert.deepEqual(received, sent)
      } finally {
        await a.stop(); await b.stop()
      }
      assert.equal(await dev.kill('SIGTERM'), 0)
    } finally {
      await dev.kill('SIGKILL')
    }
  })
})
