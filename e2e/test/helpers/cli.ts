import { fileURLToPath } from 'node:url'
import { spawnLines, type LineProcess } from '@pos-relay/testing'

/** The `pos-relay` executable as built in this checkout. */
export const CLI = fileURLToPath(new URL('../../../packages/cli/bin/pos-relay.js', import.meta.url).href)

/** a running `pos-relay`: its output line by line, waitForJson, exited, kill (see @pos-relay/testing's spawnLines) */
export type CliProcess = LineProcess

/** Runs `pos-relay ...args` with this Node (24) as a child process. */
export function spawnCli (args: string[], opts: { env?: Record<string, string>, input?: string } = {}): CliProcess {
  return spawnLines(process.execPath, [CLI, ...args], {
    env: { ...process.env, POS_RELAY_LOG_LEVEL: process.env.POS_RELAY_LOG_LEVEL ?? 'info', ...opts.env },
    ...(opts.input != null ? { input: opts.input } : {}),
    label: `pos-relay ${args.join(' ')}`,
    echo: process.env.E2E_VERBOSE != null
  })
}

/** Runs a short CLI command to completion. */
export async function runCli (args: string[], opts: { env?: Record<string, string>, input?: string } = {}): Promise<{ code: number | string, stdout: string, stderr: string }> {
  const p = spawnCli(args, opts)
  const code = await p.exited
  return { code, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') }
}
