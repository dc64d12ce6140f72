import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'

const HOOK = fileURLToPath(new URL('../../charts/pos-relay/files/delete-relaypools.mjs', import.meta.url))

// The hook's behaviour against a cluster is covered by e2e/kube; this checks only that its env is
// parsed strictly, which needs no API server: it stops before the first request.
describe('chart pre-delete hook environment', () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, [HOOK], { env: { PATH: process.env.PATH ?? '', KUBE_API: 'http://127.0.0.1:1', ...env }, encoding: 'utf8', timeout: 20_000 })

  it('refuses a REMOVE_FINALIZERS_ON_TIMEOUT that is not a boolean, and a bad TIMEOUT_SECONDS', () => {
    const bool = run({ REMOVE_FINALIZERS_ON_TIMEOUT: 'True!' })
    assert.equal(bool.status, 2, bool.stderr)
    assert.match(bool.stderr, /REMOVE_FINALIZERS_ON_TIMEOUT must be true or false.*"True!"/)
    const timeout = run({ TIMEOUT_SECONDS: 'five' })
    assert.equal(timeout.status, 2, timeout.stderr)
    assert.match(timeout.stderr, /TIMEOUT_SECONDS must be a positive number/)
  })
})
