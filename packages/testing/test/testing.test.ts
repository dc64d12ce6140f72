import assert from 'node:assert/strict'
import { connect, createServer } from 'node:net'
import { describe, it } from 'node:test'
import { freePort, startRedis, useRedis, waitFor } from '@pos-relay/testing'

/** Sends PING and resolves to the first reply line, or the connection error code. */
function ping (port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => socket.write('PING\r\n'))
    socket.on('data', (d) => {
      socket.destroy()
      resolve(d.toString().trim())
    })
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
  })
}

describe('freePort', () => {
  it('returns a port that can be bound right away', async () => {
    const port = await freePort()
    assert.ok(port > 0 && port < 65536)
    const server = createServer()
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve))
    await new Promise((resolve) => server.close(resolve))
  })
})

describe('waitFor', () => {
  it('resolves once the predicate holds, treating throws as "not yet"', async () => {
    let calls = 0
    await waitFor(
      () => {
        calls++
        if (calls === 1) throw new Error('not ready')
        return calls >= 3
      },
      { intervalMs: 1 }
    )
    assert.equal(calls, 3)
  })

  it('rejects with the message and the last error after the timeout', async () => {
    const started = Date.now()
    await assert.rejects(
      waitFor(
        () => {
          throw new Error('still broken')
        },
        { timeoutMs: 100, intervalMs: 10, message: 'widget ready' }
      ),
      (err: Error) => /widget ready/.test(err.message) && (err.cause as Error).message === 'still broken'
    )
    assert.ok(Date.now() - started >= 100)
  })
})

describe('startRedis', () => {
  it('starts, stops, restarts on the same port and kills', async () => {
    const redis = await startRedis()
    try {
      assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`)
      assert.equal(await ping(redis.port), '+PONG')
      const firstPid = redis.pid

      await redis.stop()
      assert.equal(await ping(redis.port), 'ECONNREFUSED')
      assert.throws(() => process.kill(firstPid, 0)) // gone (or a reaped zombie)

      await redis.restart()
      assert.equal(await ping(redis.port), '+PONG')
      assert.notEqual(redis.pid, firstPid)

      await redis.kill()
      assert.equal(await ping(redis.port), 'ECONNREFUSED')
    } finally {
      await redis.stop()
    }
  })
})

let usedPort = 0
describe('useRedis', () => {
  const redis = useRedis()
  // read while the suite is declared, before its hooks run
  let early: unknown
  try {
    early = redis.url
  } catch (err) {
    early = err
  }

  it('throws when read before the suite starts, then is a running Redis inside its tests', async () => {
    assert.match((early as Error).message, /before hook/)
    assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`)
    assert.equal(await ping(redis.port), '+PONG')
    usedPort = redis.port
  })
})

describe('after a suite with useRedis', () => {
  it('its Redis is stopped', async () => {
    assert.ok(usedPort > 0)
    assert.equal(await ping(usedPort), 'ECONNREFUSED')
  })
})
