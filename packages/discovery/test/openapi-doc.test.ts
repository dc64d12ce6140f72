import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { it } from 'node:test'
import { createDiscoveryServer, createMemoryStore } from '@pos-relay/discovery'

it('docs/openapi.json is the document the service serves (run `npm run openapi` after changing routes)', async () => {
  const store = createMemoryStore()
  const app = await createDiscoveryServer({ store, p2pSecret: 'unused', logger: false })
  try {
    const served = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
    const committed = JSON.parse(await readFile(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'))
    assert.deepEqual(committed, served)
  } finally {
    await app.close()
    await store.close()
  }
})
