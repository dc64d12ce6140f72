import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { spawnCli } from './kube-helpers.ts'

async function run (args: string[], env: Record<string, string> = {}): Promise<{ code: number | string, stdout: string, stderr: string }> {
  const p = spawnCli(args, env)
  const code = await p.exited
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') }
}

describe('pos-relay operator (CLI)', () => {
  it('--help lists every flag and the environment variable it reads', async () => {
    const r = await run(['operator', '--help'])
    assert.equal(r.code, 0)
    const words = [
      '--kubeconfig', 'KUBECONFIG', '--namespace', 'POS_RELAY_OPERATOR_NAMESPACE', '--metrics-port', 'POS_RELAY_OPERATOR_METRICS_PORT', 'default: 9374', '--metrics-host', 'POS_RELAY_OPERATOR_METRICS_HOST',
      '--leader-elect', 'POS_RELAY_OPERATOR_LEADER_ELECT', '--leader-election-namespace', 'POS_RELAY_OPERATOR_LEASE_NAMESPACE', '--lease-name', 'POS_RELAY_OPERATOR_LEASE_NAME',
      '--identity', 'POS_RELAY_OPERATOR_IDENTITY', '--lease-duration', 'POS_RELAY_OPERATOR_LEASE_DURATION_SECONDS', '--renew-deadline', 'POS_RELAY_OPERATOR_RENEW_DEADLINE_SECONDS',
      '--retry-period', 'POS_RELAY_OPERATOR_RETRY_PERIOD_SECONDS', '--redis', 'POS_RELAY_DISCOVERY_REDIS_URL', '--registry-ttl', 'POS_RELAY_OPERATOR_REGISTRY_TTL_SECONDS', '--relay-image', 'POS_RELAY_OPERATOR_RELAY_IMAGE',
      '--relay-image-pull-policy', 'POS_RELAY_OPERATOR_RELAY_IMAGE_PULL_POLICY', '--allowed-privileged-host-ports', 'POS_RELAY_OPERATOR_ALLOWED_PRIVILEGED_HOST_PORTS', '--workers', 'POS_RELAY_OPERATOR_WORKERS', '--resync-period', 'POS_RELAY_OPERATOR_RESYNC_PERIOD_SECONDS', '--log-level', 'POS_RELAY_LOG_LEVEL',
      'POD_NAMESPACE', 'POD_NAME'
    ]
    for (const w of words) assert.ok(r.stdout.includes(w), `operator --help lacks ${w}`)
  })

  it('rejects impossible lease timings and bad values with a clear message', async () => {
    let r = await run(['operator', '--lease-duration', '5', '--renew-deadline', '10'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /--lease-duration must be greater than --renew-deadline/)
    r = await run(['operator', '--leader-elect', 'maybe'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /--leader-elect must be true or false/)
    r = await run(['operator', '--registry-ttl', '1'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /--registry-ttl must be between 3 and 3600 seconds/)
    r = await run(['operator', '--kubeconfig', '/nonexistent/kubeconfig', '--metrics-port', '0', '--registry-ttl', '3601'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /--registry-ttl must be between 3 and 3600 seconds/)
  })

  it('refuses timer durations setTimeout cannot hold (it would fire them after 1 ms), naming the flag', async () => {
    for (const flag of ['--resync-period', '--lease-duration', '--renew-deadline', '--retry-period']) {
      const r = await run(['operator', '--kubeconfig', '/nonexistent/kubeconfig', '--metrics-port', '0', flag, '2147484'])
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, new RegExp(`${flag} must be a positive number of seconds, at most 2147483`))
    }
  })

  it('--allowed-privileged-host-ports takes ports from 1 to 1023 only', async () => {
    for (const bad of ['8080', '0', '443,x', '-1']) {
      const r = await run(['operator', '--kubeconfig', '/nonexistent/kubeconfig', '--metrics-port', '0', '--allowed-privileged-host-ports', bad])
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, /--allowed-privileged-host-ports takes ports from 1 to 1023/)
    }
  })

  it('fails clearly without a cluster to talk to', async () => {
    const r = await run(['operator', '--kubeconfig', '/nonexistent/kubeconfig', '--metrics-port', '0'])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /nonexistent/)
  })
})
