/** Strict RFC 3339: calendar, range, and the forms the ledger always accepted. */
import t from 'tap'
import fc from 'fast-check'
import { parseDateTime } from '../../src/input/date-time.js'

t.test('valid date-times give the instant they name', async (t) => {
  const cases: [string, string][] = [
    ['2026-01-02T03:04:05Z', '2026-01-02T03:04:05.000Z'],
    ['2026-01-02T03:04:05.678Z', '2026-01-02T03:04:05.678Z'],
    ['2026-01-02T03:04:05.6789999Z', '2026-01-02T03:04:05.678Z'],
    ['2026-01-02t03:04:05z', '2026-01-02T03:04:05.000Z'],
    ['2026-01-02 03:04:05Z', '2026-01-02T03:04:05.000Z'],
    ['2026-01-02T03:04Z', '2026-01-02T03:04:00.000Z'],
    ['2026-01-02T03:04:05+02:00', '2026-01-02T01:04:05.000Z'],
    ['2026-01-02T03:04:05-0130', '2026-01-02T04:34:05.000Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
    ['2000-02-29T00:00:00Z', '2000-02-29T00:00:00.000Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
    ['0099-03-01T00:00:00Z', '0099-03-01T00:00:00.000Z'],
    ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
  ]
  for (const [s, iso] of cases) t.equal(parseDateTime(s)?.toISOString(), iso, s)
})

t.test('invalid calendars, out-of-range instants and other forms are refused', async (t) => {
  for (const s of [
    '2026-02-30T00:00:00Z', // rolled over to 2 March by new Date()
    '2026-02-29T00:00:00Z',
    '1900-02-29T00:00:00Z',
    '2026-04-31T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-00-10T00:00:00Z',
    '2026-01-00T00:00:00Z',
    '0000-01-01T00:00:00Z', // PostgreSQL has no year 0
    '0001-01-01T00:00:00+01:00', // year 0 in UTC
    '9999-12-31T23:59:59-01:00', // year 10000 in UTC
    '2026-01-01T24:00:00Z',
    '2026-01-01T23:60:00Z',
    '2026-01-01T23:59:60Z',
    '2026-01-01T00:00:00+24:00',
    '2026-01-01T00:00:00', // no offset: ambiguous
    '2026-01-01',
    '+002026-01-01T00:00:00Z',
    '2026-1-1T00:00:00Z',
    'yesterday',
    '',
    '2026-01-01T00:00:00Z ',
  ]) {
    t.equal(parseDateTime(s), null, JSON.stringify(s))
  }
})

t.test('every instant in range round-trips through its ISO form', async (t) => {
  fc.assert(
    fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }), (d) => {
      t.equal(parseDateTime(d.toISOString())?.getTime(), d.getTime())
    }),
  )
})
