/**
 * The RelayPool spec fields that reach the relays (the generated table
 * RELAY_SETTINGS) against the relay they configure, without a cluster: every
 * field is rendered into a flag of `pos-relay run`, that flag sets the config
 * key the table names, every default the CRD documents is the relay's, and
 * every value the CRD accepts is one the relay's config schema accepts (else
 * a valid RelayPool would give crash-looping relays). That each flag sets the
 * config key the table names is checked in packages/cli/test/relay-settings.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { relayArgs, relayLimitsFile } from '@pos-relay/operator'
import { RELAY_SETTINGS, type RelaySetting } from '@pos-relay/operator/relay-settings'
import { DEFAULT_LIMITS, DEFAULT_RATE_LIMITS, limitsFileSchema, relayConfigSchema, RELOADABLE_LIMITS, RELOADABLE_RATE_LIMITS } from '@pos-relay/relay'
import { pool } from './fixtures.ts'

const LIMITS = RELAY_SETTINGS.filter((s) => s.field.startsWith('limits.') || s.field.startsWith('rateLimits.'))

/** the relay config value at a dotted key */
const at = (config: unknown, key: string): unknown => key.split('.').reduce<any>((o, k) => o?.[k], config)
const relayDefault = (s: RelaySetting): number | undefined => at({ limits: DEFAULT_LIMITS, rate_limits: DEFAULT_RATE_LIMITS }, s.config) as number | undefined
const specWith = (s: RelaySetting, value: number): Record<string, unknown> => {
  const [group, name] = s.field.split('.') as [string, string]
  return { [group]: { [name]: value } }
}
const configWith = (s: RelaySetting, value: number): unknown => {
  const [group, key] = s.config.split('.') as [string, string]
  return { id: 'x', p2p_secret: 's', keypair: '00', [group]: { [key]: value } }
}

describe('RelayPool limits and rate limits vs the relay', () => {
  it('the table lists every integer field of spec.limits and spec.rateLimits', () => {
    assert.deepEqual(LIMITS.map((s) => s.field), [
      'limits.maxReservations', 'limits.reservationTtlSeconds', 'limits.maxCircuits', 'limits.circuitDataLimitBytes', 'limits.circuitDurationSeconds',
      'limits.maxConnections', 'limits.maxPendingConnections', 'limits.handshakeTimeoutSeconds', 'limits.ipMaxConnections',
      'limits.peerMaxCircuits', 'limits.ipMaxCircuits', 'limits.circuitIdleTimeoutSeconds', 'limits.maxBufferedBytes',
      'rateLimits.ipConnectionsPerSecond', 'rateLimits.peerReservationsPerMinute', 'rateLimits.peerCircuitsPerMinute'
    ])
  })

  it('the reloadable fields are exactly the ones the relay applies without a restart (its RELOADABLE_LIMITS and RELOADABLE_RATE_LIMITS)', () => {
    assert.deepEqual(RELAY_SETTINGS.filter((s) => s.reloadable).map((s) => s.config).sort(),
      [...RELOADABLE_LIMITS.map((k) => `limits.${k}`), ...RELOADABLE_RATE_LIMITS.map((k) => `rate_limits.${k}`)].sort())
  })

  it('each reloadable field is written into the limits file when set, and only then; the relay\'s limits file schema takes every value the CRD accepts', () => {
    assert.deepEqual(relayLimitsFile(pool({ limits: undefined, rateLimits: undefined })), { limits: {}, rate_limits: {} })
    for (const s of RELAY_SETTINGS.filter((s) => s.reloadable)) {
      for (const v of [s.minimum, s.maximum, ...(s.zeroToo ? [0] : [])]) {
        const file = relayLimitsFile(pool(specWith(s, v)))
        assert.equal(at(file, s.config), v, s.field)
        assert.ok(!relayArgs(pool(specWith(s, v)), '192.0.2.1').includes(s.flag), `${s.field} is also a flag`)
        const r = limitsFileSchema.safeParse(file)
        assert.ok(r.success, `${s.field} = ${v} passes the CRD but not the relay's limits file schema: ${r.success ? '' : r.error.message}`)
      }
    }
  })

  it('each field that needs a restart is rendered as its flag when set, and only then', () => {
    const base = relayArgs(pool({ limits: undefined, rateLimits: undefined }), '192.0.2.1')
    for (const s of LIMITS.filter((s) => !s.reloadable)) {
      assert.ok(!base.includes(s.flag), `${s.flag} rendered while unset`)
      const args = relayArgs(pool(specWith(s, s.maximum)), '192.0.2.1')
      assert.equal(args.length, base.length + 2, `${s.field} is not rendered: ${args.join(' ')}`)
      const i = args.indexOf(s.flag)
      assert.notEqual(i, -1, `${s.field}: no ${s.flag} in ${args.join(' ')}`)
      assert.equal(args[i + 1], String(s.maximum))
    }
  })

  it('the default each description names is the relay\'s default', () => {
    for (const s of LIMITS) {
      const m = /\(relay default (\d+)( [MG]iB)?\)/.exec(s.description)
      assert.ok(m != null, `${s.field}: the description names no relay default: ${s.description}`)
      const documented = Number(m[1]) * (m[2] === ' GiB' ? 1024 ** 3 : m[2] === ' MiB' ? 1024 ** 2 : 1)
      assert.equal(documented, relayDefault(s), s.field)
    }
  })

  it('every value the CRD accepts, the relay accepts; the relay default is in range', () => {
    for (const s of LIMITS) {
      for (const v of [s.minimum, s.maximum, ...(s.zeroToo ? [0] : [])]) {
        const r = relayConfigSchema.safeParse(configWith(s, v))
        assert.ok(r.success, `${s.field} = ${v} passes the CRD but not the relay: ${r.success ? '' : r.error.message}`)
      }
      const d = relayDefault(s)!
      assert.ok((d >= s.minimum && d <= s.maximum) || (s.zeroToo && d === 0), `${s.field}: the relay default ${d} is outside the CRD range`)
    }
  })
})
