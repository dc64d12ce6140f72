import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkVersion, installedVersion, requireInternal, UpstreamChangedError } from '@pos-relay/upstream-patches/version'

test('installedVersion reads the version node resolves', () => {
  assert.match(installedVersion('libp2p') ?? '', /^\d+\.\d+\.\d+/)
  assert.equal(installedVersion('no-such-package-pos-relay'), undefined)
})

test('a version the patch was not written for fails loudly, naming package, version and patch', () => {
  const target = { patch: 'example', package: 'libp2p', versions: ['0.0.1'] }
  assert.throws(() => checkVersion(target), (err: Error) => {
    assert.ok(err instanceof UpstreamChangedError)
    assert.match(err.message, new RegExp(`libp2p ${installedVersion('libp2p')!.replaceAll('.', '\\.')} is not a version the patch 'example'`))
    return true
  })
  assert.throws(() => checkVersion({ ...target, package: 'no-such-package-pos-relay' }), /\(not installed\)/)
})

test('a missing internal fails loudly', () => {
  assert.throws(() => { requireInternal({ patch: 'example', package: 'libp2p', versions: ['1'] }, false, 'x.y missing') }, /libp2p internals changed: x\.y missing \(patch 'example'/)
})
