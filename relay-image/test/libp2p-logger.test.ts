import { test } from 'node:test'
import assert from 'node:assert/strict'
import { disable, enable } from '@libp2p/logger'
import { quietComponentLogger } from '../src/libp2p-logger.ts'

test('quietComponentLogger: disabled loggers for names DEBUG does not enable, upstream\'s for those it does', () => {
  disable()
  try {
    const logger = quietComponentLogger()
    const quiet = logger.forComponent('libp2p:tcp:connection')
    assert.equal(quiet.enabled, false)
    quiet('a message %s', 'x'); quiet.error('an error'); quiet.trace('a trace') // no-ops, no throw
    assert.equal(quiet.newScope('inbound').enabled, false)
    enable('libp2p:tcp:connection:inbound,libp2p:yamux*')
    assert.equal(logger.forComponent('libp2p:yamux').enabled, true)
    assert.equal(logger.forComponent('libp2p:tcp').enabled, false)
    // a scope DEBUG enables below a name it does not
    assert.equal(quiet.newScope('inbound').enabled, true)
    enable('libp2p:identify:error')
    const errorsOnly = logger.forComponent('libp2p:identify')
    assert.equal((errorsOnly.error as unknown as { enabled: boolean }).enabled, true, 'an enabled :error namespace gets upstream\'s logger')
  } finally {
    disable()
  }
})
