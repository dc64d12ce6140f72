/**
 * The operator passes RelayPool spec fields to relays as flags of `pos-relay
 * run`, from the table generated from the RelayPool schema
 * (@pos-relay/operator/relay-settings). Each of those flags must be an option
 * of `run` that sets the relay config key the table names.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Command } from 'commander'
import { buildPod, type RelayPool } from '@pos-relay/operator'
import { RELAY_SETTINGS } from '@pos-relay/operator/relay-settings'
import { newConfig } from '@pos-relay/relay'
import { applyOverrides, P2P_SECRET_ENV, program } from 'pos-relay'

const at = (config: unknown, key: string): unknown => key.split('.').reduce<any>((o, k) => o?.[k], config)

describe('relay flags the operator renders', () => {
  it('each is an option of `pos-relay run` that sets the config key the generated table names', async () => {
    const run = program().commands.find((c) => c.name() === 'run')!
    const file = await newConfig({ p2p_secret: 's' })
    for (const s of RELAY_SETTINGS) {
      const opt = run.options.find((o) => o.long === s.flag)
      assert.ok(opt != null, `pos-relay run has no ${s.flag}`)
      const value = s.zeroToo ? s.maximum : s.minimum
      // parse the flag as the CLI does, then apply it as `run` does
      const parsed = new Command().addOption(opt).exitOverride().parse([s.flag, String(value)], { from: 'user' }).opts()
      const config = await applyOverrides(file, parsed as any)
      assert.equal(at(config, s.config), value, `${s.flag} ${value} does not set ${s.config}`)
    }
  })
})

describe('a RelayPool relay with discovery.p2pSecretRef, as `pos-relay run` reads it', () => {
  it('gets the p2p secret and discovery URL from the Secret by env, and registers refresh-only', async () => {
    const pool: RelayPool = {
      metadata: { name: 'edge', namespace: 'relays', uid: 'u' },
      spec: { replicas: 1, discovery: { redisUrlSecretRef: { name: 'disc' }, p2pSecretRef: { name: 'disc' } } }
    }
    const pod = buildPod({ pool, slot: 0, node: 'n1', publicAddress: '192.0.2.1', image: 'img', imagePullPolicy: 'IfNotPresent' })
    const container = pod.spec!.containers[0]!
    const secret: Record<string, string> = { 'p2p-secret': 'pool-secret', 'api-url': 'http://discovery.pos-relay.svc:8080' }
    // what the kubelet does with valueFrom.secretKeyRef
    const env: Record<string, string> = {}
    for (const e of container.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef
      if (ref != null) { assert.equal(ref.name, 'disc'); if (secret[ref.key] != null) env[e.name] = secret[ref.key]! } else env[e.name] = e.value!
    }
    assert.ok(!JSON.stringify(container.args).includes('pool-secret'))
    const run = program().commands.find((c) => c.name() === 'run')!
    const parser = new Command().exitOverride()
    for (const o of run.options) parser.addOption(o)
    const saved = { ...process.env }
    let opts: any
    try {
      Object.assign(process.env, env)
      opts = parser.parse(container.args!.slice(1), { from: 'user' }).opts()
    } finally {
      for (const k of Object.keys(env)) { if (saved[k] == null) delete process.env[k]; else process.env[k] = saved[k] }
    }
    const config = await applyOverrides(await newConfig({ p2p_secret: 'placeholder-in-identity-secret' }), { ...opts, p2pSecret: env[P2P_SECRET_ENV] })
    assert.equal(config.refresh_only, true)
    assert.equal(config.p2p_secret, 'pool-secret')
    assert.equal(config.api_url, 'http://discovery.pos-relay.svc:8080')
  })

  it('without p2pSecretRef a pool relay has no discovery URL and does not refresh', () => {
    const pool: RelayPool = { metadata: { name: 'edge', namespace: 'relays' }, spec: { replicas: 1, discovery: { redisUrlSecretRef: { name: 'disc' } } } }
    const container = buildPod({ pool, slot: 0, node: 'n1', publicAddress: '192.0.2.1', image: 'img', imagePullPolicy: 'IfNotPresent' }).spec!.containers[0]!
    assert.ok(!container.args!.includes('--refresh-only'))
    assert.deepEqual(container.env!.map((e) => e.name), ['POS_RELAY_LOG_LEVEL'])
  })
})
