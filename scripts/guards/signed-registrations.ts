// Guard by guard, removes one check of the signed-registration rules (issue 12, item 1), rebuilds,
// runs the test named for it and expects it to FAIL; then restores the file. Prints one line per
// guard and exits 1 when a test still passes without its guard (the test could not catch it).
//
//   npx node scripts/guards/signed-registrations.ts [guard-name-substring]
//
// Edits files in the working tree (restored with `git checkout -- <file>` after each guard): run it
// on a clean tree, never while other tests run from this tree's dist/.
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'

interface Guard {
  name: string
  file: string
  /** text removed (replaced by `to`); `nth` picks the occurrence (0-based) */
  from: string
  to: string
  nth?: number
  test: string
  pattern: string
}

const REDIS = 'packages/discovery/src/redis-store.ts'
const MEMORY = 'packages/discovery/src/memory-store.ts'
const SERVER = 'packages/discovery/src/server.ts'
const SIGNED = 'packages/discovery/test/signed.test.ts'

/** the Lua checks: the signed-entry rules are one function both scripts call; each script checks the skew itself */
const SKEW = "if signed and math.abs(signed - now) > skew then return {'forbidden', 'skew', string.format('%d', now)} end"
const VERIFY_REGISTER = "if (proof) await verifyProof({ op: refreshOnly ? 'refresh' : 'register'"
const NO_VERIFY_REGISTER = "if (proof) await (async (..._: unknown[]) => {})({ op: refreshOnly ? 'refresh' : 'register'"
const redisRules: Guard[] = [
  { name: 'redis register and deregister: unsigned refresh or deletion of a signed entry', file: REDIS, from: "if not signed then return {'forbidden', 'unsigned', ''} end", to: '', test: SIGNED, pattern: 'unsigned refresh or an unsigned DELETE' },
  { name: 'redis register and deregister: replayed signed_at', file: REDIS, from: "if signed <= last then return {'forbidden', 'replay', string.format('%d', last)} end", to: '', test: SIGNED, pattern: 'replayed or older' },
  { name: 'redis register: skewed signed_at', file: REDIS, from: SKEW, to: '', nth: 0, test: SIGNED, pattern: 'more than 60 s' },
  { name: 'redis deregister: skewed signed_at', file: REDIS, from: SKEW, to: '', nth: 1, test: SIGNED, pattern: 'more than 60 s' }
]

const guards: Guard[] = [
  ...redisRules,
  { name: 'redis deregister: deletion signed by another key', file: REDIS, from: "return {'forbidden', 'key', tostring(rec.relay.peer_id)}", to: '', test: SIGNED, pattern: "another key's signature" },
  { name: 'redis register: signature verification', file: REDIS, from: VERIFY_REGISTER, to: NO_VERIFY_REGISTER, test: SIGNED, pattern: "another key's signature" },
  { name: 'redis deregister: signature verification', file: REDIS, from: "if (proof) await verifyProof({ op: 'delete'", to: "if (proof) await (async (..._: unknown[]) => {})({ op: 'delete'", test: SIGNED, pattern: 'binds id, addrs' },
  { name: 'memory register: unsigned refresh of a signed entry', file: MEMORY, from: "if (!proof) throw unsignedError(reg.id, 'register')\n        if (proof.signed_at", to: 'if (proof && proof.signed_at', test: SIGNED, pattern: 'rules inside the store' },
  { name: 'memory register: replayed signed_at', file: MEMORY, from: 'if (proof.signed_at <= last) throw replayError(reg.id, proof.signed_at, last)', to: '', test: SIGNED, pattern: 'rules inside the store' },
  { name: 'memory register: skewed signed_at', file: MEMORY, from: 'if (proof && Math.abs(proof.signed_at - t) > MAX_SIGNATURE_SKEW_MS) throw skewError(proof.signed_at, t)', to: '', nth: 0, test: SIGNED, pattern: 'rules inside the store' },
  { name: 'memory register: signature verification', file: MEMORY, from: VERIFY_REGISTER, to: NO_VERIFY_REGISTER, test: SIGNED, pattern: 'rules inside the store' },
  { name: 'memory deregister: unsigned deletion of a signed entry', file: MEMORY, from: "if (!proof) throw unsignedError(id, 'delete')\n        if (proof.signed_at", to: 'if (proof && proof.signed_at', test: SIGNED, pattern: 'rules inside the store' },
  { name: 'memory deregister: deletion signed by another key', file: MEMORY, from: 'if (prev && proof && prev.record.peer_id !== proof.peer_id) throw foreignKeyError(id, proof.peer_id, prev.record.peer_id)', to: '', test: SIGNED, pattern: 'rules inside the store' },
  { name: 'memory: one signed_at wins once under concurrency (replay check)', file: MEMORY, from: 'if (proof.signed_at <= last) throw replayError(reg.id, proof.signed_at, last)', to: '', test: SIGNED, pattern: 'exactly one wins' },
  { name: 'redis: one signed_at wins once under concurrency (replay check in the script)', file: REDIS, from: "if signed <= last then return {'forbidden', 'replay', string.format('%d', last)} end", to: '', nth: 0, test: SIGNED, pattern: 'exactly one wins' },
  { name: 'route: requireSigned refuses unsigned POST', file: SERVER, from: 'if (signature === undefined && requireSigned) {', to: 'if (signature === undefined && requireSigned && false) {', test: SIGNED, pattern: 'requireSigned refuses' },
  { name: 'route: requireSigned refuses unsigned DELETE', file: SERVER, from: 'if (body == null && requireSigned) {', to: 'if (body == null && requireSigned && false) {', test: SIGNED, pattern: 'requireSigned refuses' },
  { name: 'cli: --require-signed reaches the server', file: 'packages/cli/src/commands/discovery.ts', from: 'logger, publicAddressesOnly, requireSigned, authFailures', to: 'logger, publicAddressesOnly, authFailures', test: 'packages/cli/test/cli.test.ts', pattern: 'require-signed' },
  { name: 'schema: signed addrs must be in normal form', file: 'packages/discovery/src/schemas.ts', from: 'else if (signed && result && result.addr !== addr) {', to: "else if (signed && result && result.addr !== addr && addr === '') {", test: SIGNED, pattern: '400 for malformed' },
  { name: 'relay: signs its registrations', file: 'relay-image/src/relay.ts', from: 'privateKey: decodeKeypair(config.keypair),\n        record:', to: 'record:', test: 'e2e/test/relay-e2e.test.ts', pattern: 'arrive signed' },
  { name: 'operator registry: signs registrations and deletions', file: 'operator/src/registry-signer.ts', from: 'return await this.sign(op, {', to: 'return await (async (..._: unknown[]) => undefined)(op, {', test: 'operator/test/registry-signed.test.ts', pattern: 'registers and heartbeats signed' },
]

const only = process.argv[2]
let escaped = 0
for (const g of guards) {
  if (only != null && !g.name.includes(only)) continue
  const original = readFileSync(g.file, 'utf8')
  const parts = original.split(g.from)
  const nth = g.nth ?? 0
  if (parts.length < nth + 2) throw new Error(`${g.name}: guard text not found in ${g.file}`)
  const patched = parts.slice(0, nth + 1).join(g.from) + g.to + parts.slice(nth + 1).join(g.from)
  writeFileSync(g.file, patched)
  try {
    execFileSync('npx', ['tsc', '-b'], { stdio: 'inherit' })
    const run = spawnSync('npx', ['node', '--test', '--test-timeout=240000', `--test-name-pattern=${g.pattern}`, g.test], { encoding: 'utf8' })
    const failed = run.status !== 0
    if (!failed) escaped++
    process.stdout.write(`${failed ? 'FAILS without guard (good)' : 'STILL PASSES (bad)'}  ${g.name}  [${g.test} -- ${g.pattern}]\n`)
  } finally {
    writeFileSync(g.file, original)
  }
}
execFileSync('npx', ['tsc', '-b'], { stdio: 'inherit' })
process.exit(escaped === 0 ? 0 : 1)
