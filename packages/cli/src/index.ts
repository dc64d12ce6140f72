export { program, main } from './main.js'
export { applyOverrides } from './commands/run.js'
export { readSecret } from './secret.js'
export { deprecatedEnvOf } from './env.js'
