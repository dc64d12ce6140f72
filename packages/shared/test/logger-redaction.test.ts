/**
 * The logger never prints a secret in the fields secrets travel in. The
 * fields are listed here, not taken from REDACTED_PATHS: dropping one from
 * that list must fail this test.
 */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { createLogger } from '@pos-relay/shared'

/** A logger writing into an array of parsed JSON lines. */
function capture (): { logger: ReturnType<typeof createLogger>, lines: () => string[] } {
  const chunks: string[] = []
  const destination = new Writable({ write (chunk, _enc, cb) { chunks.push(String(chunk)); cb() } })
  const logger = createLogger({ name: 'redaction-test', level: 'info', destination })
  return { logger, lines: () => chunks.join('').split('\n').filter((l) => l !== '') }
}

/** Sets `value` at a dotted path of a fresh object. */
function at (path: string, value: unknown): Record<string, unknown> {
  const root: Record<string, unknown> = {}
  let obj = root
  const parts = path.split('.')
  for (const part of parts.slice(0, -1)) obj = (obj[part] = {}) as Record<string, unknown>
  obj[parts.at(-1)!] = value
  return root
}

const get = (obj: any, path: string): unknown => path.split('.').reduce((o, k) => o?.[k], obj)

/** where the relay, discovery and CLI put secrets in log objects */
const SECRET_FIELDS = [
  'p2p_secret',
  'p2pSecret',
  'secret',
  'keypair',
  'config.p2p_secret',
  'config.keypair',
  'req.headers.authorization',
  'headers.authorization',
  'authorization'
]

describe('log redaction', () => {
  for (const field of SECRET_FIELDS) {
    it(`prints ${field} as [redacted]`, () => {
      const { logger, lines } = capture()
      const secret = `s3cret-${field}-${Math.random().toString(36).slice(2)}`
      logger.info({ ...at(field, secret), event: 'probe' }, 'probe')
      const [line] = lines()
      assert.ok(line != null, 'nothing logged')
      assert.ok(!line.includes(secret), `the secret in ${field} was printed: ${line}`)
      assert.equal(get(JSON.parse(line), field), '[redacted]')
    })
  }

  it('a whole relay config logged as `config` keeps its other fields and hides the secret and the key', () => {
    const { logger, lines } = capture()
    const config = { id: 'relay-1', api_url: 'http://127.0.0.1:8080', p2p_secret: 'the-shared-secret', port: 7373, keypair: 'CAESQP-private-key-bytes' }
    logger.info({ event: 'config_loaded', config }, 'config')
    const [line] = lines()
    assert.ok(!line!.includes('the-shared-secret') && !line!.includes('CAESQP-private-key-bytes'), line)
    assert.deepEqual(JSON.parse(line!).config, { ...config, p2p_secret: '[redacted]', keypair: '[redacted]' })
  })

  it('a bearer header logged with a request is hidden, its other headers kept', () => {
    const { logger, lines } = capture()
    logger.info({ req: { method: 'POST', url: '/api/p2p/relays', headers: { authorization: 'Bearer the-shared-secret', host: 'x' } } }, 'request')
    const [line] = lines()
    assert.ok(!line!.includes('the-shared-secret'), line)
    assert.equal(JSON.parse(line!).req.headers.host, 'x')
  })
})
