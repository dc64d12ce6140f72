import assert from 'node:assert/strict'
import { it } from 'node:test'
import { DEFAULT_TIERS, parseTiers } from '@pos-relay/accounts'

it('default tiers', () => {
  assert.deepEqual(Object.keys(DEFAULT_TIERS), ['free', 'pro', 'unlimited'])
  assert.deepEqual(DEFAULT_TIERS.free, { name: 'free', max_reservations: 2, circuit_data_limit_bytes: 256 * 2 ** 20, circuit_duration_seconds: 1800, monthly_bytes: 10 * 2 ** 30 })
  assert.deepEqual(DEFAULT_TIERS.pro, { name: 'pro', max_reservations: 16, circuit_data_limit_bytes: 4 * 2 ** 30, circuit_duration_seconds: 3600, monthly_bytes: 2 ** 40 })
  assert.deepEqual(DEFAULT_TIERS.unlimited, { name: 'unlimited', max_reservations: 64, circuit_data_limit_bytes: 0, circuit_duration_seconds: 0, monthly_bytes: 0 })
  assert.deepEqual(parseTiers(JSON.parse(JSON.stringify(DEFAULT_TIERS))), DEFAULT_TIERS)
})

it('parseTiers accepts an object keyed by name or an array with names', () => {
  const body = { max_reservations: 1, circuit_data_limit_bytes: 10, circuit_duration_seconds: 20, monthly_bytes: 30 }
  assert.deepEqual(parseTiers({ tiny: body }), { tiny: { name: 'tiny', ...body } })
  assert.deepEqual(parseTiers([{ name: 'tiny', ...body }, { name: 'big', ...body, monthly_bytes: 0 }]), {
    tiny: { name: 'tiny', ...body },
    big: { name: 'big', ...body, monthly_bytes: 0 },
  })
})

it('parseTiers names what is wrong', () => {
  const body = { max_reservations: 1, circuit_data_limit_bytes: 10, circuit_duration_seconds: 20, monthly_bytes: 30 }
  const cases: [unknown, RegExp][] = [
    [{}, /at least one tier/],
    [[], /at least one tier/],
    ['free', /invalid tiers/],
    [{ free: { ...body, max_reservations: -1 } }, /max_reservations/],
    [{ free: { ...body, max_reservations: 0 } }, /max_reservations/],
    [{ free: { ...body, monthly_bytes: 1.5 } }, /monthly_bytes/],
    // setTimeout runs a longer timer after 1 ms
    [{ free: { ...body, circuit_duration_seconds: 2_147_484 } }, /free\.circuit_duration_seconds: must be at most 2147483 seconds/],
    [{ free: { ...body, circuit_data_limit_bytes: '10' } }, /circuit_data_limit_bytes/],
    [{ free: { ...body, extra: 1 } }, /extra/],
    [{ free: { max_reservations: 1 } }, /monthly_bytes/],
    [{ 'Bad Name': body }, /invalid tiers/],
    [{ free: { ...body, name: 'pro' } }, /has name "pro"/],
    [[{ name: 'a', ...body }, { name: 'a', ...body }], /defined twice/],
  ]
  for (const [input, message] of cases) assert.throws(() => parseTiers(input), message, JSON.stringify(input))
})
