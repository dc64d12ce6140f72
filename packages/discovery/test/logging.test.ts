import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { ADMIN, asBearer, createAccount, inject, P2P, setup as setupAccounts, ticket } from './accounts-api.ts'
import { AUTH, post, RELAYS, SECRET, setup, validBody } from './relay-api.ts'

describe('logging', () => {
  it('logs structured JSON without the secret or the Authorization header', async () => {
    const lines: string[] = []
    const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) })
    const { app } = await setup({ logger })
    const wrong = 'wrong-token-5d1e'
    await post(app, validBody())
    await post(app, validBody(), { authorization: `Bearer ${wrong}` })
    await app.inject({ method: 'DELETE', url: `${RELAYS}/relay-1`, headers: AUTH })
    await app.inject({ method: 'GET', url: RELAYS })
    assert.ok(lines.length >= 4, `only ${lines.length} log lines`)
    const entries = lines.map((l) => JSON.parse(l) as { msg?: string })
    assert.ok(entries.some((e) => e.msg === 'relay registered'))
    assert.ok(entries.some((e) => e.msg === 'unauthorized request'))
    const all = lines.join('\n')
    assert.equal(all.includes(SECRET), false, 'secret leaked into logs')
    assert.equal(all.includes(wrong), false, 'presented token leaked into logs')
    assert.equal(/authorization/i.test(all), false, 'Authorization header logged')
  })

  it('never logs API keys, tickets or secrets', async () => {
    const lines: string[] = []
    const logger = pino({ level: 'trace', redact: ['req.headers.authorization'] }, { write: (line: string) => void lines.push(line) })
    const { app } = await setupAccounts({ logger })
    const { api_key, account } = await createAccount(app)
    const t = (await ticket(app, api_key)).json()
    await ticket(app, 'pra_wrong-key-123')
    await inject(app, 'GET', '/api/admin/accounts', asBearer('wrong-admin-xyz'))
    const rotated = (await inject(app, 'POST', `/api/admin/accounts/${account.id}/rotate-key`)).json()
    await inject(app, 'POST', `/api/admin/tickets/${t.jti}/revoke`)
    const all = lines.join('\n')
    assert.ok(lines.length > 8)
    assert.ok(all.includes('account created'))
    for (const secret of [api_key, rotated.api_key, t.ticket, t.ticket.split('.')[2] as string, ADMIN, P2P, 'pra_wrong-key-123', 'wrong-admin-xyz']) {
      assert.equal(all.includes(secret), false, `log leaks ${secret.slice(0, 12)}…`)
    }
  })
})
