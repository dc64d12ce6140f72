import assert from 'node:assert/strict'
import { it } from 'node:test'
import { generateTicketKey, TicketIssuer, TicketVerifier } from '@pos-relay/accounts'
import { PEER_A } from './fixtures.ts'
import { fuzzTickets } from './fuzz-cases.ts'

const CASES = Number(process.env.TICKET_FUZZ_CASES ?? 3000)

it(`fuzz: ${CASES} random and mutated tokens only ever produce a TicketError`, { timeout: 120_000 }, async () => {
  const key = await generateTicketKey()
  const issuer = await TicketIssuer.create({ keys: [key] })
  const verifier = new TicketVerifier({ jwks: issuer.jwks() })
  const valid = (await issuer.issue({ account: 'acc_0123456789abcdef', tier: 'free', peer: PEER_A })).ticket
  const seed = Number(process.env.TICKET_FUZZ_SEED ?? Date.now() % 2 ** 31)
  const result = await fuzzTickets({ verifier, key, valid, count: CASES, seed })
  assert.deepEqual(result.failures, [], `seed ${seed}`)
  assert.equal(result.cases, CASES)
  // the mix reaches every stage of verification
  for (const reason of ['malformed', 'bad_algorithm', 'unknown_key', 'bad_signature', 'bad_claims', 'wrong_peer'] as const) {
    assert.ok((result.reasons[reason] ?? 0) > 0, `no case ended in ${reason} (seed ${seed}): ${JSON.stringify(result.reasons)}`)
  }
})
