/**
 * Operator HA (issue 11 item 4): two `pos-relay operator` processes on one
 * Lease against a real kube-apiserver + etcd. The leader is stopped while a
 * RelayPool is scaled up, and the standby must carry out the change:
 * - SIGKILL (the Lease is not released, as when the leader's node dies):
 *   within the lease duration + 5 s;
 * - SIGTERM (the leader releases the Lease, as when its pod is deleted):
 *   sooner than that, since the standby need not wait the lease out.
 * The test's lease timings are short (3 / 2 / 0.5 s); production timings are
 * measured by operator/bench/failover.ts (docs/benchmarks.md).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startRedis, type RedisServer } from '@pos-relay/testing'
import { CRD_FILE, ensureKubeBinaries, startControlPlane, type ControlPlane } from '../../e2e/kube/harness.ts'
import { OPERATOR_FAST_LEASE, startOperator, until, type OperatorProc } from './kube-helpers.ts'
import { isLeader, measureFailover, setUpFailoverPool, startStandby } from './failover.ts'

const LEASE_MS = Number(OPERATOR_FAST_LEASE[OPERATOR_FAST_LEASE.indexOf('--lease-duration') + 1]) * 1000
const ARGS = ['--relay-image', 'pos-relay:test']

await ensureKubeBinaries()

describe('operator leader failover between two processes', { timeout: 300_000 }, () => {
  let cp: ControlPlane
  let redis: RedisServer
  const operators: OperatorProc[] = []

  before(async () => {
    cp = await startControlPlane({ crds: [CRD_FILE] })
    redis = await startRedis()
    await setUpFailoverPool(cp, redis.url, 4)
    operators.push(await startOperator(cp, ARGS))
    await until('first operator leads', async () => await isLeader(operators[0]!), 15_000)
    operators.push(await startStandby(cp, ARGS))
  }, { timeout: 180_000 })

  after(async () => {
    for (const o of operators) await o.kill('SIGKILL')
    await redis?.stop()
    await cp?.stop()
  })

  let crashMs = 0

  it('leader killed (SIGKILL, Lease not released): the standby reconciles a change within lease duration + 5 s', async () => {
    const [leader, standby] = operators as [OperatorProc, OperatorProc]
    const r = await measureFailover(cp, { leader, standby, signal: 'SIGKILL', timeoutMs: LEASE_MS + 5000 })
    crashMs = r.ms
    process.stdout.write(`# failover after SIGKILL (lease ${LEASE_MS} ms): ${r.ms.toFixed(0)} ms to ${r.pod}\n`)
    operators.shift()
  })

  it('leader stopped (SIGTERM, Lease released): the standby takes over sooner, without waiting the lease out', async () => {
    operators.push(await startStandby(cp, ARGS))
    const [leader, standby] = operators as [OperatorProc, OperatorProc]
    const r = await measureFailover(cp, { leader, standby, signal: 'SIGTERM', timeoutMs: LEASE_MS + 5000 })
    process.stdout.write(`# failover after SIGTERM: ${r.ms.toFixed(0)} ms to ${r.pod}\n`)
    assert.equal(leader.child.exitCode, 0, 'exit 0 on SIGTERM')
    // the released Lease is taken on the standby's next attempt, not after the lease duration
    assert.ok(r.ms < crashMs, `after SIGTERM ${r.ms.toFixed(0)} ms, after SIGKILL ${crashMs.toFixed(0)} ms`)
    operators.shift()
  })
})
