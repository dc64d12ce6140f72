// Long ticket-parser fuzz run: `npx node packages/accounts/fuzz/tickets.ts`
// FUZZ_CASES (default 200000) and FUZZ_SEED (default: time) choose the run; exits 1 on any
// input that makes TicketVerifier.verify throw something other than a TicketError or accept a forgery.
import { generateTicketKey, TicketIssuer, TicketVerifier } from '@pos-relay/accounts'
import { PEER_A } from '../test/fixtures.ts'
import { fuzzTickets } from '../test/fuzz-cases.ts'

const cases = Number(process.env.FUZZ_CASES ?? 200_000)
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)
const key = await generateTicketKey()
const issuer = await TicketIssuer.create({ keys: [key] })
const verifier = new TicketVerifier({ jwks: issuer.jwks() })
const valid = (await issuer.issue({ account: 'acc_0123456789abcdef', tier: 'free', peer: PEER_A })).ticket

const started = performance.now()
const chunk = 10_000
const total = { cases: 0, accepted: 0, reasons: {} as Record<string, number>, failures: [] as { input: string, problem: string }[] }
for (let done = 0; done < cases; done += chunk) {
  const r = await fuzzTickets({ verifier, key, valid, count: Math.min(chunk, cases - done), seed: seed + done })
  total.cases += r.cases
  total.accepted += r.accepted
  for (const [k, v] of Object.entries(r.reasons)) total.reasons[k] = (total.reasons[k] ?? 0) + (v ?? 0)
  total.failures.push(...r.failures)
  process.stderr.write(`\r${total.cases}/${cases} cases, ${total.failures.length} failures`)
}
process.stderr.write('\n')
const seconds = (performance.now() - started) / 1000
process.stdout.write(JSON.stringify({ seed, ...total, failures: total.failures.slice(0, 20), seconds: Math.round(seconds * 10) / 10, cases_per_second: Math.round(total.cases / seconds) }, null, 2) + '\n')
process.exit(total.failures.length === 0 ? 0 : 1)
