#!/usr/bin/env node
// Committed (not built) so `npm install` can link the executable before
// `prepare` compiles the TypeScript in dist/.
import { main } from '../dist/main.js'

await main(process.argv)
