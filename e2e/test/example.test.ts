import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { freePort, waitFor } from '@pos-relay/testing'
import { spawnCli } from './helpers/cli.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/file-transfer/src/main.ts', import.meta.url))

function example (args: string[]) {
  const child = spawn(process.execPath, [EXAMPLE, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: any[] = []
  createInterface({ input: child.stdout }).on('line', (l) => { try { lines.push(JSON.parse(l)) } catch {} })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { child, lines, exited }
}

describe('examples/file-transfer (the README walk-through)', { timeout: 90_000 }, () => {
  it('sends a 3 MiB file through the dev relay and the receiver gets it intact', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pos-relay-example-'))
    const [port, relayPort, metricsPort] = [await freePort(), await freePort(), await freePort()]
    const dev = spawnCli(['dev', '--port', String(port), '--relay-port', String(relayPort), '--metrics-port', String(metricsPort)])
    const url = `http://127.0.0.1:${port}`
    let listener: ReturnType<typeof example> | undefined
    try {
      await waitFor(() => dev.stdout.some((l) => l.includes('relay address:')), { timeoutMs: 20_000, message: 'dev not up' })
      // dev runs with accounts on: the relay wants tickets, which the app gets with the dev API key
      const apiKey = /dev API key:\s+(\S+)/.exec(dev.stdout.join('\n'))?.[1]
      assert.ok(apiKey != null, 'dev printed no API key')
      listener = example(['listen', '--discovery', url, '--out', dir, '--api-key', apiKey])
      await waitFor(() => listener!.lines.some((l) => l.event === 'listening'), { timeoutMs: 20_000, message: 'listener not up' })
      const peerId = listener.lines.find((l) => l.event === 'listening').peer_id
      const file = join(dir, 'photo.bin')
      const content = randomBytes(3 * 1024 * 1024)
      await writeFile(file, content)
      const sender = example(['send', '--discovery', url, '--api-key', apiKey, '--peer', peerId, '--file', file])
      assert.equal(await sender.exited, 0)
      const sent = sender.lines.find((l) => l.event === 'sent')
      assert.equal(sent.intact, true)
      assert.equal(sent.bytes, content.length)
      await waitFor(() => listener!.lines.some((l) => l.event === 'received'), { timeoutMs: 5000 })
      const received = await readFile(join(dir, 'received-photo.bin'))
      assert.equal(createHash('sha256').update(received).digest('hex'), createHash('sha256').update(content).digest('hex'))
    } finally {
      listener?.child.kill('SIGKILL')
      await dev.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })
})
