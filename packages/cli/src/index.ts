export { program, main } from './main.js'
export { applyOverrides, P2P_SECRET_ENV } from './commands/run.js'
export { readSecret } from './secret.js'
export { deprecatedEnvOf } from './env.js'
