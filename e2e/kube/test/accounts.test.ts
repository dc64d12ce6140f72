/**
 * Accounts in the chart (issue 11, item 1), against a real kube-apiserver and helm:
 * - `helm template` output is the same from run to run and holds no key material;
 * - `helm install` (the test plays the kubelet for the pre-install hook Job, running its args
 *   with this checkout's CLI as the hook's ServiceAccount) creates the ticket keys and admin
 *   Secrets once; `helm upgrade` keeps them byte for byte;
 * - discovery started as a process from the rendered Deployment (args, env, mounted Secrets,
 *   real Redis) signs tickets with the Secret's key and serves the admin API with its secret;
 * - rotation with `helm upgrade --set accounts.ticketKeys.generation=2` follows the documented
 *   no-downtime procedure: new key signs, old key stays published (a ticket signed before still
 *   verifies), discovery is rolled; the old key is retired at a `helm upgrade` after retireAfterSeconds;
 * - two runs that both find the Secrets absent create them once (409 = read theirs);
 * - an invalid `accounts.tiers` value is refused by values.schema.json with a clear message.
 */
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { TicketVerifier, ticketKeysUrl } from '@pos-relay/accounts'
import { freePort, startRedis, type RedisServer } from '@pos-relay/testing'
import { CHART_DIR, ensureKubeBinaries, run, startControlPlane, type ControlPlane } from '../harness.ts'
import { ensureAccountSecrets, kubeSecretsApi, type SecretsApi } from 'pos-relay'
import { CLI, runCli, spawnCli, type CliProcess } from '../../test/helpers/cli.ts'
import { ensureNamespace, helmOffline, helmWithAccountsHook, k, kJson, renderChart, serviceAccountKubeconfig } from './helpers.ts'

const NS = 'accounts'
const KEYS_SECRET = 'pos-relay-ticket-keys'
const ADMIN_SECRET = 'pos-relay-admin'
const PEER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const TIERS = { basic: { max_reservations: 4, circuit_data_limit_bytes: 536870912, circuit_duration_seconds: 1800, monthly_bytes: 107374182400 } }

const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8')
const kidOfTicket = (jws: string): string => JSON.parse(Buffer.from(jws.split('.')[0]!, 'base64url').toString('utf8')).kid
const kidsOf = (secret: any): string[] => JSON.parse(unb64(secret.data['ticket-keys.json'])).map((key: any) => key.kid)

await ensureKubeBinaries()

describe('accounts in the chart', { timeout: 500_000 }, () => {
  let cp: ControlPlane
  let tmp: string
  let redis: RedisServer
  let discovery: CliProcess | undefined
  const valuesFile = (): string => {
    const file = join(tmp, 'values.json')
    writeFileSync(file, JSON.stringify({ accounts: { tiers: TIERS } }))
    return file
  }

  before(async () => {
    cp = await startControlPlane()
    tmp = mkdtempSync(join(tmpdir(), 'pos-relay-accounts-'))
    redis = await startRedis()
  })
  after(async () => {
    await discovery?.kill('SIGKILL')
    await redis?.stop()
    await cp?.stop()
    if (tmp != null) rmSync(tmp, { recursive: true, force: true })
  })

  /**
   * Starts discovery as its pod would: the rendered Deployment's args and env, its Secret and
   * ConfigMap volumes written to a folder (mount paths mapped there), the local Redis standing in
   * for the bundled one, loopback instead of 0.0.0.0.
   */
  async function startDiscoveryFromDeployment (): Promise<{ url: string, adminSecretFile: string }> {
    await discovery?.kill('SIGTERM')
    const dep = await kJson(cp, ['get', 'deployment', 'pos-relay-discovery', '-n', NS])
    const pod = dep.spec.template.spec
    const c = pod.containers[0]
    const root = mkdtempSync(join(tmp, 'pod-'))
    let args: string[] = c.args
    for (const m of c.volumeMounts) {
      const v = pod.volumes.find((x: any) => x.name === m.name)
      if (v.secret == null && v.configMap == null) continue
      const obj = v.secret != null
        ? await kJson(cp, ['get', 'secret', v.secret.secretName, '-n', NS])
        : await kJson(cp, ['get', 'configmap', v.configMap.name, '-n', NS])
      const dir = join(root, m.name)
      mkdirSync(dir)
      // without items, every key of the object becomes a file
      const items = (v.secret ?? v.configMap).items ?? Object.keys(obj.data).map((key) => ({ key, path: key }))
      for (const item of items) {
        const value = v.secret != null ? unb64(obj.data[item.key]) : obj.data[item.key]
        writeFileSync(join(dir, item.path), value, { mode: 0o440 })
      }
      args = args.map((a) => a.replace(`=${m.mountPath as string}/`, `=${dir}/`))
    }
    const env: Record<string, string> = {}
    for (const e of c.env) {
      if (e.value != null) { env[e.name] = e.value; continue }
      const ref = e.valueFrom.secretKeyRef
      env[e.name] = unb64((await kJson(cp, ['get', 'secret', ref.name, '-n', NS])).data[ref.key])
    }
    env.POS_RELAY_DISCOVERY_REDIS_URL = redis.url // the bundled Redis's stand-in
    const port = await freePort()
    args = args.map((a) => a === '--host=0.0.0.0' ? '--host=127.0.0.1' : a.startsWith('--port=') ? `--port=${port}` : a)
    discovery = spawnCli(args, { env })
    const ready = await discovery.waitForJson((o) => o.event === 'discovery_ready')
    assert.equal(ready.accounts, true)
    assert.deepEqual(ready.tiers, ['basic'])
    const adminArg = args.find((a) => a.startsWith('--admin-secret-file='))!
    return { url: `http://127.0.0.1:${port}`, adminSecretFile: adminArg.slice('--admin-secret-file='.length) }
  }

  async function jwksKids (url: string): Promise<string[]> {
    const r = await fetch(ticketKeysUrl(url))
    assert.equal(r.status, 200)
    return (await r.json() as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid)
  }

  let apiKey = ''
  async function issueTicket (url: string): Promise<string> {
    const r = await fetch(`${url}/api/p2p/tickets`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ peer_id: PEER }) })
    assert.equal(r.status, 200, await r.clone().text())
    return (await r.json() as { ticket: string }).ticket
  }

  it('helm template gives the same output twice and renders no key material', async () => {
    // the registry's p2p secret and Redis password are created by the same hook (chart.test.ts)
    const fixed = ['-f', valuesFile()]
    const a = await renderChart(fixed)
    const b = await renderChart(fixed)
    assert.equal(a, b)
    assert.doesNotMatch(a, /ticket-keys\.json:|admin-secret:|"d":/, 'no key material in the manifests')
    assert.match(a, /--ticket-keys-file=\/etc\/pos-relay\/ticket-keys\/ticket-keys.json/)
    assert.match(a, /helm\.sh\/hook: pre-install,pre-upgrade/)
  })

  it('an invalid tiers value is refused by the schema, naming the field and the rule', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ free: { ...TIERS.basic, max_reservations: 0 } }, /accounts\/tiers\/free\/max_reservations.*minimum/s],
      [{ free: { ...TIERS.basic, circuit_duration_seconds: 1e9 } }, /accounts\/tiers\/free\/circuit_duration_seconds.*maximum/s],
      [{ free: { ...TIERS.basic, monthly_bytes: 'lots' } }, /accounts\/tiers\/free\/monthly_bytes.*(integer|number)/s],
      [{ free: { ...TIERS.basic, burst: 1 } }, /accounts\/tiers\/free.*burst/s],
      [{ 'Bad Name': TIERS.basic }, /invalid propertyName 'Bad Name'.*does not match pattern/s],
      [{ free: { max_reservations: 1 } }, /accounts\/tiers\/free.*missing.*circuit_data_limit_bytes/s]
    ]
    for (const [tiers, want] of cases) {
      const file = join(tmp, 'bad-tiers.json')
      writeFileSync(file, JSON.stringify({ accounts: { tiers } }))
      const r = await helmOffline(['template', 'x', CHART_DIR, '-f', file])
      assert.notEqual(r.code, 0, `accepted ${JSON.stringify(tiers)}`)
      assert.match(r.stderr, /values don't meet the specifications of the schema/)
      assert.match(r.stderr, want)
    }
    // the one rule JSON Schema cannot say is the chart's own check
    const file = join(tmp, 'bad-name.json')
    writeFileSync(file, JSON.stringify({ accounts: { tiers: { free: { ...TIERS.basic, name: 'pro' } } } }))
    const r = await helmOffline(['template', 'x', CHART_DIR, '-f', file])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /accounts\.tiers\.free: tier "free" has name "pro"/)
  })

  let keysBefore: any
  let adminBefore: any
  it('helm install runs the hook, which creates the Secrets', async () => {
    await ensureNamespace(cp, NS)
    const r = await helmWithAccountsHook(cp, ['install', 'pos-relay', CHART_DIR, '-n', NS, '-f', valuesFile()], { namespace: NS, tmp })
    assert.equal(r.hook?.code, 0, `${r.hook?.stdout ?? ''}${r.hook?.stderr ?? ''}`)
    assert.equal(r.helm.code, 0, r.helm.stderr)
    const events = r.hook!.stdout.trim().split('\n').map((l) => JSON.parse(l))
    assert.deepEqual(events.map((e) => `${e.event as string} ${e.secret as string ?? e.deployment as string}`),
      ['secret_created pos-relay-redis', 'secret_created pos-relay-discovery', `secret_created ${ADMIN_SECRET}`, `secret_created ${KEYS_SECRET}`, 'rollout_skipped pos-relay-discovery'])
    assert.doesNotMatch(r.hook!.stdout, /"d"/, 'the hook never logs key material')
    keysBefore = await kJson(cp, ['get', 'secret', KEYS_SECRET, '-n', NS])
    adminBefore = await kJson(cp, ['get', 'secret', ADMIN_SECRET, '-n', NS])
    assert.equal(kidsOf(keysBefore).length, 1)
    assert.ok(unb64(adminBefore.data['admin-secret']).length >= 43)
    assert.equal(keysBefore.metadata.labels['app.kubernetes.io/instance'], 'pos-relay')
    // the Secrets are not release objects (Helm never saw their data); the hook's objects are gone after success
    assert.equal(keysBefore.metadata.annotations['meta.helm.sh/release-name'], undefined)
    assert.match(r.helm.stdout, /kubectl port-forward -n accounts svc\/pos-relay-discovery 8080:8080/)
    assert.match(r.helm.stdout, /admin secret: secret\/pos-relay-admin/)
    assert.match(r.helm.stdout, /pos-relay accounts create --name acme --tier basic --api-url http:\/\/127\.0\.0\.1:8080 --admin-secret-file admin-secret/)
  })

  it('discovery from the rendered Deployment signs with the Secret\'s key and serves the admin API with its secret', async () => {
    const d = await startDiscoveryFromDeployment()
    assert.deepEqual(await jwksKids(d.url), kidsOf(keysBefore))
    // as NOTES.txt says: pos-relay accounts … with the admin secret read from the Secret
    const created = await runCli(['accounts', 'create', '--name', 'acme', '--tier', 'basic', '--api-url', d.url, '--admin-secret-file', d.adminSecretFile])
    assert.equal(created.code, 0, created.stderr)
    apiKey = JSON.parse(created.stdout).api_key
    const ticket = await issueTicket(d.url)
    assert.equal(kidOfTicket(ticket), kidsOf(keysBefore)[0])
  })

  it('helm upgrade keeps both Secrets byte for byte', async () => {
    const r = await helmWithAccountsHook(cp, ['upgrade', 'pos-relay', CHART_DIR, '-n', NS, '-f', valuesFile(), '--set', 'discovery.replicas=3'], { namespace: NS, tmp })
    assert.equal(r.hook?.code, 0, r.hook?.stderr)
    assert.equal(r.helm.code, 0, r.helm.stderr)
    assert.match(r.hook!.stdout, /"event":"secret_unchanged"/)
    for (const [name, was] of [[KEYS_SECRET, keysBefore], [ADMIN_SECRET, adminBefore]]) {
      const now = await kJson(cp, ['get', 'secret', name, '-n', NS])
      assert.equal(now.metadata.uid, was.metadata.uid, `${name} was recreated`)
      assert.equal(now.metadata.resourceVersion, was.metadata.resourceVersion, `${name} was written`)
      assert.deepEqual(now.data, was.data)
    }
    const dep = await kJson(cp, ['get', 'deployment', 'pos-relay-discovery', '-n', NS])
    assert.equal(dep.spec.replicas, 3)
    assert.equal(dep.spec.template.metadata.annotations?.['pos-relay.io/ticket-kids'], undefined, 'no rollout without a key change')
  })

  it('rotation: helm upgrade with generation 2 adds a signing key, keeps the old one published and rolls discovery', async () => {
    const old = kidsOf(keysBefore)[0]!
    const ticketOld = await issueTicket((await startDiscoveryFromDeployment()).url)
    const r = await helmWithAccountsHook(cp, ['upgrade', 'pos-relay', CHART_DIR, '-n', NS, '-f', valuesFile(), '--set', 'accounts.ticketKeys.generation=2'], { namespace: NS, tmp })
    assert.equal(r.hook?.code, 0, r.hook?.stderr)
    assert.equal(r.helm.code, 0, r.helm.stderr)
    const keys = await kJson(cp, ['get', 'secret', KEYS_SECRET, '-n', NS])
    const kids = kidsOf(keys)
    assert.equal(kids.length, 2)
    assert.equal(kids[1], old)
    assert.equal(keys.metadata.annotations['pos-relay.io/ticket-keys-generation'], '2')
    assert.ok(JSON.parse(keys.metadata.annotations['pos-relay.io/ticket-keys-superseded'])[old] != null)
    const dep = await kJson(cp, ['get', 'deployment', 'pos-relay-discovery', '-n', NS])
    const rolled = dep.spec.template.metadata.annotations['pos-relay.io/ticket-kids']
    assert.match(rolled, /^[0-9a-f]{16}$/, 'discovery is rolled to load the new keys')
    // the new pod: signs with the new key, publishes both; a ticket signed before still verifies
    const d = await startDiscoveryFromDeployment()
    assert.deepEqual(await jwksKids(d.url), kids)
    const ticketNew = await issueTicket(d.url)
    assert.equal(kidOfTicket(ticketNew), kids[0])
    const verifier = new TicketVerifier({ jwksUrl: ticketKeysUrl(d.url) })
    for (const t of [ticketOld, ticketNew]) assert.equal((await verifier.verify(t, PEER)).sub, PEER)
    // helm upgrade again with the same generation: nothing changes, no new rollout
    const again = await helmWithAccountsHook(cp, ['upgrade', 'pos-relay', CHART_DIR, '-n', NS, '-f', valuesFile(), '--set', 'accounts.ticketKeys.generation=2'], { namespace: NS, tmp })
    assert.equal(again.helm.code, 0, again.helm.stderr)
    assert.deepEqual(kidsOf(await kJson(cp, ['get', 'secret', KEYS_SECRET, '-n', NS])), kids)
    assert.equal((await kJson(cp, ['get', 'deployment', 'pos-relay-discovery', '-n', NS])).spec.template.metadata.annotations['pos-relay.io/ticket-kids'], rolled)
  })

  it('rotation, last step: a helm upgrade after retireAfterSeconds drops the old key and rolls discovery', async () => {
    const keys = await kJson(cp, ['get', 'secret', KEYS_SECRET, '-n', NS])
    const [current, old] = kidsOf(keys)
    // the passage of time: the old key stopped signing three hours ago (retireAfterSeconds is 7200)
    const superseded = { [old!]: new Date(Date.now() - 3 * 3600_000).toISOString() }
    await k(cp, ['annotate', 'secret', KEYS_SECRET, '-n', NS, '--overwrite', `pos-relay.io/ticket-keys-superseded=${JSON.stringify(superseded)}`])
    const r = await helmWithAccountsHook(cp, ['upgrade', 'pos-relay', CHART_DIR, '-n', NS, '-f', valuesFile(), '--set', 'accounts.ticketKeys.generation=2'], { namespace: NS, tmp })
    assert.equal(r.helm.code, 0, r.helm.stderr)
    assert.match(r.hook!.stdout, new RegExp(`"retired":\\["${old!}"\\]`))
    assert.deepEqual(kidsOf(await kJson(cp, ['get', 'secret', KEYS_SECRET, '-n', NS])), [current])
    const d = await startDiscoveryFromDeployment()
    assert.deepEqual(await jwksKids(d.url), [current])
  })

  it('two hook processes started together both succeed and leave one Secret each', async () => {
    const ns = 'race'
    await ensureNamespace(cp, ns)
    // the hook's RBAC, as rendered for this namespace
    const rendered = await renderChart(['--show-only', 'templates/secrets-hook.yaml'], { namespace: ns })
    await k(cp, ['apply', '-n', ns, '-f', '-'], rendered.split(/^---\s*$/m).filter((doc) => /^kind: (ServiceAccount|Role|RoleBinding)$/m.test(doc)).join('\n---\n'))
    const kubeconfig = await serviceAccountKubeconfig(cp, ns, 'pos-relay-accounts-secrets', tmp)
    const args = [CLI, 'keys', 'ensure-secrets', `--namespace=${ns}`, `--ticket-keys-secret=${KEYS_SECRET}`, `--admin-secret=${ADMIN_SECRET}`, `--kubeconfig=${kubeconfig}`,
      '--discovery-secret=pos-relay-discovery', '--api-url=http://pos-relay-discovery.race.svc:8080', '--redis-secret=pos-relay-redis', '--redis-host=pos-relay-redis.race.svc:6379']
    const all = [KEYS_SECRET, ADMIN_SECRET, 'pos-relay-discovery', 'pos-relay-redis']
    for (let round = 0; round < 3; round++) {
      for (const name of all) await cp.kubectl(['delete', 'secret', name, '-n', ns, '--ignore-not-found'])
      const runs = await Promise.all([run(process.execPath, args, { timeoutMs: 60_000 }), run(process.execPath, args, { timeoutMs: 60_000 })])
      for (const x of runs) assert.equal(x.code, 0, x.stderr)
      const events = runs.flatMap((x) => x.stdout.trim().split('\n').map((l) => JSON.parse(l)))
      for (const name of all) {
        const mine = events.filter((e) => e.secret === name)
        assert.equal(mine.filter((e) => e.event === 'secret_created').length, 1, `${name} created once: ${JSON.stringify(mine)}`)
      }
      // the discovery Secret's redis-url carries the password of the Redis Secret that won
      const password = unb64((await kJson(cp, ['get', 'secret', 'pos-relay-redis', '-n', ns])).data.password)
      assert.equal(unb64((await kJson(cp, ['get', 'secret', 'pos-relay-discovery', '-n', ns])).data['redis-url']), `redis://:${password}@pos-relay-redis.race.svc:6379`)
      // both runs end with the same key set: the one in the Secret
      const kids = kidsOf(await kJson(cp, ['get', 'secret', KEYS_SECRET, '-n', ns]))
      const reported = events.filter((e) => e.secret === KEYS_SECRET && e.kids != null).map((e) => e.kids)
      for (const r of reported) assert.deepEqual(r, kids)
    }
  })

  it('two runs that both find the Secrets absent: one creates, the other gets 409 and uses the winner\'s', async () => {
    // the processes above may not overlap; here both runs are held after their first read until
    // the other has read too, so both see "absent" and both try to create (real API server)
    const ns = 'race'
    for (const name of [KEYS_SECRET, ADMIN_SECRET]) await cp.kubectl(['delete', 'secret', name, '-n', ns, '--ignore-not-found'])
    const kubeconfig = await serviceAccountKubeconfig(cp, ns, 'pos-relay-accounts-secrets', tmp)
    const reads = new Map<string, number>()
    const waiting = new Map<string, Array<() => void>>()
    const heldApi = (): SecretsApi => {
      const api = kubeSecretsApi(kubeconfig, ns)
      let first = new Set<string>()
      return {
        ...api,
        async read (name) {
          const result = await api.read(name)
          if (!first.has(name)) {
            first = new Set([...first, name])
            reads.set(name, (reads.get(name) ?? 0) + 1)
            if (reads.get(name) === 2) for (const go of waiting.get(name) ?? []) go()
            else await new Promise<void>((resolve) => waiting.set(name, [...(waiting.get(name) ?? []), resolve]))
          }
          return result
        }
      }
    }
    const events: any[] = []
    const opts = { ticketKeysSecret: KEYS_SECRET, adminSecret: ADMIN_SECRET, generation: 1, retireAfterSeconds: 7200, log: (e: any) => { events.push(e) } }
    const [a, b] = await Promise.all([ensureAccountSecrets(heldApi(), opts), ensureAccountSecrets(heldApi(), opts)])
    for (const name of [KEYS_SECRET, ADMIN_SECRET]) {
      const mine = events.filter((e) => e.secret === name).map((e) => e.event)
      assert.deepEqual(mine.filter((e) => e === 'secret_created').length, 1, `${name}: ${mine.join(', ')}`)
      assert.ok(mine.includes('secret_create_conflict'), `${name}: the loser saw 409: ${mine.join(', ')}`)
    }
    const kids = kidsOf(await kJson(cp, ['get', 'secret', KEYS_SECRET, '-n', ns]))
    assert.deepEqual(a.kids, kids)
    assert.deepEqual(b.kids, kids)
  })

  it('a Secret with broken keys is reported, never overwritten', async () => {
    const ns = 'race'
    await k(cp, ['delete', 'secret', KEYS_SECRET, '-n', ns])
    await k(cp, ['create', 'secret', 'generic', KEYS_SECRET, '-n', ns, '--from-literal=ticket-keys.json=[{"kty":"RSA"}]'])
    const kubeconfig = await serviceAccountKubeconfig(cp, ns, 'pos-relay-accounts-secrets', tmp)
    const r = await run(process.execPath, [CLI, 'keys', 'ensure-secrets', `--namespace=${ns}`, `--ticket-keys-secret=${KEYS_SECRET}`, `--kubeconfig=${kubeconfig}`], { timeoutMs: 60_000 })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /Secret pos-relay-ticket-keys: key ticket-keys\.json: invalid ticket keys.*not overwritten/)
    assert.equal(unb64((await kJson(cp, ['get', 'secret', KEYS_SECRET, '-n', ns])).data['ticket-keys.json']), '[{"kty":"RSA"}]')
  })
})
