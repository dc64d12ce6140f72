import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { spawnLines, type LineProcess } from '@pos-relay/testing'

const BUILD_SCRIPT = fileURLToPath(new URL('../../../scripts/build-clients.sh', import.meta.url))
/** The JavaScript file-transfer example, run with this Node. */
export const JS_EXAMPLE = fileURLToPath(new URL('../../../examples/file-transfer/src/main.ts', import.meta.url))

/** A file-transfer example: the JavaScript one (bin undefined), or a Rust or Go binary; `why` says why it is missing. */
export interface ExampleClient {
  name: 'js' | 'rust' | 'go'
  bin?: string
  why?: string
}

/**
 * The Rust or Go example binary: `$envVar` when set, else the build cache filled by
 * scripts/build-clients.sh (never built here: that takes minutes).
 */
export function cachedClient (name: 'rust' | 'go', envVar: string): ExampleClient {
  const target = `${name}-file-transfer`
  const fromEnv = process.env[envVar]
  if (fromEnv != null && fromEnv !== '') return existsSync(fromEnv) ? { name, bin: fromEnv } : { name, why: `${envVar}=${fromEnv} does not exist` }
  try {
    const out = execFileSync('bash', [BUILD_SCRIPT, '--cached-only', target], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    const bin = out.trim().split('\n').at(-1)
    if (bin != null && existsSync(bin)) return { name, bin }
  } catch {}
  return { name, why: `the ${name} example is not built: run scripts/build-clients.sh ${target} (or set ${envVar})` }
}

/** Runs an example (`listen` or `send` and its flags: the contract the three examples share). */
export function runExample (client: ExampleClient, args: string[], opts: { timeoutMs?: number } = {}): LineProcess {
  const [cmd, argv] = client.name === 'js' ? [process.execPath, [JS_EXAMPLE, ...args]] : [client.bin!, args]
  return spawnLines(cmd, argv, {
    label: `${client.name} ${args[0]}`,
    echo: process.env.E2E_VERBOSE != null,
    keepStderr: 200,
    ...(opts.timeoutMs != null ? { timeoutMs: opts.timeoutMs } : {})
  })
}

/** The JSON objects an example printed so far. */
export function jsonLines (p: LineProcess): any[] {
  return p.stdout.flatMap((l) => { try { return [JSON.parse(l)] } catch { return [] } })
}
