/**
 * The RelayPool CRD's limits and rate limits against the relay they configure,
 * without a cluster: every field is rendered into a flag, every default the
 * CRD documents is the relay's, and every value the CRD's CEL rules accept is
 * one the relay's config schema accepts (else a valid RelayPool would give
 * crash-looping relays).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { parse } from 'yaml'
import { relayArgs } from '@pos-relay/operator'
import { DEFAULT_LIMITS, DEFAULT_RATE_LIMITS, relayConfigSchema } from '@pos-relay/relay'
import { pool } from './fixtures.ts'

const CRD = parse(readFileSync(new URL('../../crds/relaypools.pos-relay.io.yaml', import.meta.url), 'utf8'))
const spec = CRD.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties

interface Field { group: 'limits' | 'rateLimits', name: string, description: string, min: number, max: number, zeroToo: boolean }

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** fields with their CEL range: `self.f >= A && self.f <= B`, optionally `self.f == 0 ||` */
function fields (group: 'limits' | 'rateLimits'): Field[] {
  const schema = spec[group]
  const rules: Array<{ rule: string }> = schema['x-kubernetes-validations']
  return Object.entries<any>(schema.properties).filter(([, p]) => p.type === 'integer').map(([name, p]) => {
    const rule = rules.find((r) => r.rule.includes(`self.${name} >=`))?.rule
    assert.ok(rule != null, `${group}.${name} has no CEL range rule`)
    const m = new RegExp(`self\\.${name} >= (\\d+) && self\\.${name} <= (\\d+)`).exec(rule)
    assert.ok(m != null, `cannot read the range of ${group}.${name} from ${rule}`)
    return { group, name, description: p.description, min: Number(m[1]), max: Number(m[2]), zeroToo: rule.includes(`self.${name} == 0 ||`) }
  })
}

const ALL = [...fields('limits'), ...fields('rateLimits')]
const relayDefaults = (f: Field): Record<string, number> => (f.group === 'limits' ? DEFAULT_LIMITS : DEFAULT_RATE_LIMITS) as Record<string, number>
const relayKey = (f: Field): string => snake(f.name)
const configWith = (f: Field, value: number): unknown => ({
  id: 'x',
  p2p_secret: 's',
  keypair: '00',
  [f.group === 'limits' ? 'limits' : 'rate_limits']: { [relayKey(f)]: value }
})

describe('RelayPool limits and rate limits vs the relay', () => {
  it('reads every integer field and its range', () => {
    assert.deepEqual(ALL.map((f) => `${f.group}.${f.name}`), [
      'limits.maxReservations', 'limits.reservationTtlSeconds', 'limits.maxCircuits', 'limits.circuitDataLimitBytes', 'limits.circuitDurationSeconds',
      'limits.maxConnections', 'limits.maxPendingConnections', 'limits.handshakeTimeoutSeconds', 'limits.ipMaxConnections',
      'limits.peerMaxCircuits', 'limits.ipMaxCircuits', 'limits.circuitIdleTimeoutSeconds', 'limits.maxBufferedBytes',
      'rateLimits.ipConnectionsPerSecond', 'rateLimits.peerReservationsPerMinute', 'rateLimits.peerCircuitsPerMinute'
    ])
  })

  it('each field is a setting of the relay config, and is rendered as a flag of `pos-relay run` when set', () => {
    for (const f of ALL) {
      assert.ok(relayKey(f) in relayDefaults(f), `${f.group}.${f.name}: the relay has no ${relayKey(f)}`)
      const args = relayArgs(pool({ [f.group]: { [f.name]: f.max } }), '192.0.2.1')
      assert.equal(args.length, 13, `${f.group}.${f.name} is not rendered: ${args.join(' ')}`)
      assert.match(args[11]!, /^--[a-z-]+$/)
      assert.equal(args[12], String(f.max))
    }
  })

  it('the default each description names is the relay\'s default', () => {
    for (const f of ALL) {
      const m = /\(relay default (\d+)( [MG]iB)?\)/.exec(f.description)
      assert.ok(m != null, `${f.group}.${f.name}: the description names no relay default: ${f.description}`)
      const documented = Number(m[1]) * (m[2] === ' GiB' ? 1024 ** 3 : m[2] === ' MiB' ? 1024 ** 2 : 1)
      assert.equal(documented, relayDefaults(f)[relayKey(f)], `${f.group}.${f.name}`)
    }
  })

  it('every value the CEL rules accept, the relay accepts; the relay default is in range', () => {
    for (const f of ALL) {
      for (const v of [f.min, f.max, ...(f.zeroToo ? [0] : [])]) {
        const r = relayConfigSchema.safeParse(configWith(f, v))
        assert.ok(r.success, `${f.group}.${f.name} = ${v} passes the CRD but not the relay: ${r.success ? '' : r.error.message}`)
      }
      const d = relayDefaults(f)[relayKey(f)]!
      assert.ok((d >= f.min && d <= f.max) || (f.zeroToo && d === 0), `${f.group}.${f.name}: the relay default ${d} is outside the CRD range`)
    }
  })
})
