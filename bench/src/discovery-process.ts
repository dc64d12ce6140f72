/**
 * The discovery API (@pos-relay/discovery) in its own process, on
 * 127.0.0.1 with a random port, pre-filled with N fake relays (valid Ed25519
 * peer ids, addr /ip4/10.0.x.y/tcp/7373/p2p/<id>), registered through the
 * store with a 10 min TTL so none expires during the bench.
 * Args: <memory|redis> <count> [redis url] [addrs per relay: 1 (tcp) or 2 (tcp + quic-v1)]
 * Prints one JSON line: {"ready":true,"pid":..,"url":"http://127.0.0.1:<port>","registered":N}.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createDiscoveryServer, createMemoryStore, createRedisStore } from '@pos-relay/discovery'
import { serve } from './lib/rpc-child.ts'

const [kind = 'memory', countArg = '1000', redisUrl, addrsArg = '1'] = process.argv.slice(2)
const count = Number(countArg)
if (kind !== 'memory' && kind !== 'redis') throw new Error(`store must be memory or redis, not ${kind}`)
if (kind === 'redis' && redisUrl == null) throw new Error('redis store needs a url')
const store = kind === 'redis' ? createRedisStore({ url: redisUrl! }) : createMemoryStore()

const ttlMs = 10 * 60_000
for (let i = 0; i < count; i++) {
  const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  await store.register({
    id: `bench-relay-${String(i).padStart(5, '0')}`,
    peer_id: peerId,
    addrs: [
      `/ip4/10.0.${(i >> 8) & 255}.${i & 255}/tcp/7373/p2p/${peerId}`,
      ...(addrsArg === '2' ? [`/ip4/10.0.${(i >> 8) & 255}.${i & 255}/udp/7373/quic-v1/p2p/${peerId}`] : [])
    ]
  }, ttlMs)
}

const app = await createDiscoveryServer({ store, p2pSecret: 'bench-secret', ttlSeconds: 600, logger: false })
await app.listen({ host: '127.0.0.1', port: 0 })
const addr = app.server.address()
if (addr == null || typeof addr === 'string') throw new Error('discovery server has no TCP address')

serve({ url: `http://127.0.0.1:${addr.port}`, store: kind, registered: count }, {}, async () => {
  await app.close()
  await store.close()
})
