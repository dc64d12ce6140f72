/**
 * autocannon (programmatic) against GET <base>/api/p2p/relays?for=<key>&count=3 with a new
 * peer id per request (never repeated within the run, so discovery's ?for= answer cache never
 * hits: the cost of ranking), for bench/src/discovery-load.ts, which runs it pinned to a core.
 * Args: <base url> <rate /s> <seconds> <connections>. Prints autocannon's result as one JSON line.
 */
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'

// autocannon ships no types; only this call is used
const autocannon = createRequire(import.meta.url)('autocannon') as (opts: Record<string, unknown>) => Promise<unknown>

const [base = '', rateArg = '1000', secondsArg = '6', connectionsArg = '50'] = process.argv.slice(2)
const rate = Number(rateArg)
const seconds = Number(secondsArg)
// Ed25519 peer ids from random 32-byte keys: valid ids (discovery parses them), cheap to make
const keys = Array.from({ length: Math.ceil(rate * (seconds + 2) * 1.2) }, () => peerIdFromPublicKey(publicKeyFromRaw(randomBytes(32))).toString())
let next = 0
const result = await autocannon({
  url: base,
  connections: Number(connectionsArg),
  overallRate: rate,
  duration: seconds,
  timeout: 10,
  requests: [{ method: 'GET', setupRequest: (req: Record<string, unknown>) => ({ ...req, path: `/api/p2p/relays?for=${keys[next++ % keys.length]}&count=3` }) }]
})
process.stdout.write(`${JSON.stringify(result)}\n`)
