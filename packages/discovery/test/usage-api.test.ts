import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UsageMeter } from '@pos-relay/accounts'
import { waitFor } from '@pos-relay/testing'
import { createAccount, inject, setup, ticket } from './accounts-api.ts'

describe('revocation and usage', () => {
  it('revokes a ticket on every relay bus', async () => {
    const { app, events, bus } = await setup()
    const { api_key } = await createAccount(app)
    const { jti } = (await ticket(app, api_key)).json()
    const res = await inject(app, 'POST', `/api/admin/tickets/${jti}/revoke`)
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { jti, revoked: true })
    await waitFor(() => events.some((e) => e.kind === 'ticket' && e.id === jti), { timeoutMs: 5000 })
    assert.equal(await bus.isRevoked({ account: 'acc_other', jti }), true)
    const bad = await inject(app, 'POST', '/api/admin/tickets/bad%20jti/revoke')
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().field, 'jti')
  })

  it('serves usage as JSON and CSV, filtered by account and range', async () => {
    const { app, sink } = await setup()
    const meter = new UsageMeter({ sink, relayId: 'r1' })
    const h = Date.parse('2030-01-01T10:00:00.000Z')
    meter.add('acc_aaaaaaaaaaaaaaaa', { bytes_to_destination: 100, bytes_to_source: 50, circuits: 2, circuit_seconds: 1.5 }, new Date(h))
    meter.add('acc_bbbbbbbbbbbbbbbb', { reservation_seconds: 30 }, new Date(h + 3600_000))
    await meter.flush()
    const from = '2030-01-01T10:00:00Z'
    const to = '2030-01-01T12:00:00.000Z'
    const all = await inject(app, 'GET', `/api/admin/usage?from=${from}&to=${to}`)
    assert.equal(all.statusCode, 200, all.body)
    assert.deepEqual(all.json(), [
      { account: 'acc_aaaaaaaaaaaaaaaa', hour: '2030-01-01T10:00:00.000Z', bytes_to_destination: 100, bytes_to_source: 50, circuits: 2, circuit_seconds: 1.5, reservation_seconds: 0 },
      { account: 'acc_bbbbbbbbbbbbbbbb', hour: '2030-01-01T11:00:00.000Z', bytes_to_destination: 0, bytes_to_source: 0, circuits: 0, circuit_seconds: 0, reservation_seconds: 30 },
    ])
    const one = await inject(app, 'GET', `/api/admin/usage?account=acc_bbbbbbbbbbbbbbbb&from=${from}&to=${to}&format=json`)
    assert.equal(one.json().length, 1)
    const csv = await inject(app, 'GET', `/api/admin/usage?from=${from}&to=${to}&format=csv`)
    assert.equal(csv.statusCode, 200)
    assert.match(csv.headers['content-type'] as string, /^text\/csv/)
    assert.equal(csv.body.split('\n')[0], 'account,hour,bytes_to_destination,bytes_to_source,circuits,circuit_seconds,reservation_seconds')
    assert.equal(csv.body.split('\n')[1], 'acc_aaaaaaaaaaaaaaaa,2030-01-01T10:00:00.000Z,100,50,2,1.5,0')
    const empty = await inject(app, 'GET', '/api/admin/usage')
    assert.equal(empty.statusCode, 200)
    assert.deepEqual(empty.json(), [], 'defaults to the current month')

    for (const [query, field] of [
      ['from=yesterday', 'from'],
      ['to=2030-13-01T00:00:00Z', 'to'],
      ['format=xml', 'format'],
      ['account=bad%20id', 'account'],
      ['unknown=1', 'unknown'],
      [`from=${to}&to=${from}`, undefined],
      ['from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z', undefined],
    ] as const) {
      const res = await inject(app, 'GET', `/api/admin/usage?${query}`)
      assert.equal(res.statusCode, 400, `${query}: ${res.body}`)
      assert.equal(res.json().field, field, query)
    }
  })
})
