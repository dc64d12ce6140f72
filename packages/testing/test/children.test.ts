import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pollUntil, spawnLines } from '@pos-relay/testing'

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }

describe('pollUntil', () => {
  it('returns the first value that is not undefined or false, treating throws as "not yet"', async () => {
    let n = 0
    const v = await pollUntil('n to reach 3', () => { n++; if (n === 1) throw new Error('not ready'); return n >= 3 ? n : false }, { intervalMs: 1 })
    assert.equal(v, 3)
  })

  it('times out naming what it waited for, the last error (as cause) and the described state', async () => {
    await assert.rejects(
      pollUntil('the pool', () => { throw new Error('503') }, { timeoutMs: 30, intervalMs: 5, describe: () => 'status: Pending' }),
      (err: Error) => /^timed out after 30 ms waiting for the pool: 503\nstatus: Pending$/.test(err.message) && (err.cause as Error).message === '503'
    )
  })
})

describe('spawnLines and the child registry', () => {
  it('collects lines, finds a JSON line, and kills', async () => {
    const p = spawnLines(process.execPath, ['-e', 'console.log("hello"); console.log(JSON.stringify({ event: "ready", n: 1 })); console.error("warn"); setInterval(() => {}, 1000)'])
    assert.deepEqual(await p.waitForJson((o) => o.event === 'ready'), { event: 'ready', n: 1 })
    assert.equal(p.stdout[0], 'hello')
    assert.equal(await p.kill('SIGTERM'), 'SIGTERM')
  })

  it('reports a child that exits before the expected line', async () => {
    const p = spawnLines(process.execPath, ['-e', 'console.error("boom"); process.exit(3)'], { label: 'doomed' })
    await assert.rejects(p.waitForJson(() => true, 10_000), /doomed exited \(3\) before the expected output\nstderr:\nboom/)
  })

  it('a process that exits leaves no tracked child behind', async () => {
    // the parent tracks a long sleeper, prints its pid and exits without stopping it
    const script = `import { spawnLines } from '@pos-relay/testing'
const c = spawnLines(process.execPath, ['-e', 'setInterval(() => {}, 1000)'])
console.log(JSON.stringify({ pid: c.child.pid }))
setTimeout(() => process.exit(0), 100)`
    const parent = spawnLines(process.execPath, ['--input-type=module', '-e', script], { env: process.env })
    const { pid } = await parent.waitForJson((o) => o.pid != null)
    assert.equal(await parent.exited, 0)
    await pollUntil(`child ${pid} to be gone`, () => !alive(pid), { timeoutMs: 5000 })
  })
})
