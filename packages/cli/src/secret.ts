import { createInterface } from 'node:readline'
import { readEnv } from './env.js'

/**
 * Reads the p2p secret: from POS_RELAY_P2P_SECRET (or the deprecated P2P_SECRET) if set, else a hidden prompt when
 * stdin is a terminal, else the first line of stdin (containers, scripts).
 */
export async function readSecret (env: NodeJS.ProcessEnv = process.env, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  const fromEnv = readEnv('POS_RELAY_P2P_SECRET', 'P2P_SECRET', env)
  if (fromEnv != null && fromEnv !== '') return fromEnv.trim()
  if (stdin.isTTY === true) {
    const { default: password } = await import('@inquirer/password')
    return (await password({ message: 'p2p secret (shared with the discovery API):', mask: '*' })).trim()
  }
  const rl = createInterface({ input: stdin, crlfDelay: Infinity })
  try {
    // the first line only
    const first = await rl[Symbol.asyncIterator]().next()
    if (first.done !== true) return first.value.trim()
  } finally {
    rl.close()
  }
  return ''
}
