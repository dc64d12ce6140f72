// Writes docs/openapi.json from the discovery API's route schemas (the same
// zod schemas that validate requests). A discovery test fails if it drifts.
import { writeFile } from 'node:fs/promises'
import { createDiscoveryServer, createMemoryStore } from '@pos-relay/discovery'

const store = createMemoryStore()
const app = await createDiscoveryServer({ store, p2pSecret: 'unused', logger: false })
await app.ready()
const doc = (app as unknown as { swagger: () => unknown }).swagger()
await writeFile(new URL('../docs/openapi.json', import.meta.url), JSON.stringify(doc, null, 2) + '\n')
await app.close()
await store.close()
