/**
 * The operator passes RelayPool spec fields to relays as flags of `pos-relay
 * run`, from the table generated from the RelayPool schema
 * (@pos-relay/operator/relay-settings). Each of those flags must be an option
 * of `run` that sets the relay config key the table names.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Command } from 'commander'
import { RELAY_SETTINGS } from '@pos-relay/operator/relay-settings'
import { newConfig } from '@pos-relay/relay'
import { applyOverrides, program } from 'pos-relay'

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
