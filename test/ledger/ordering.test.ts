/**
 * The ordering rule has one declaration (src/ledger/ordering.ts) and three readings: the TypeScript
 * comparator of the append, the SQL guard of the projection's upsert and the SQL ORDER BY of the
 * fold. Run against PostgreSQL itself, all three must rank the same events the same way.
 */
import t from 'tap'
import fc from 'fast-check'
import pg from 'pg'
import { freshDatabase } from '../helpers/db.js'
import { beats, beatsSql, compareRank, eventColumns, stateColumns, WINNER_ORDER, type Ranked } from '../../src/ledger/ordering.js'

const base = Date.parse('2026-01-01T00:00:00.000Z')
// Few distinct times and states: ties are where the rule has something to say.
const ranked = fc.record({
  occurredAt: fc.integer({ min: 0, max: 3 }).map((n) => new Date(base + n)),
  state: fc.constantFrom('subscribed', 'unsubscribed'),
  seq: fc.bigInt({ min: 1n, max: 6n }),
})

t.test('the TS comparator, the SQL guard and the SQL ORDER BY agree', async (t) => {
  const { url } = await freshDatabase(t)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())

  t.equal(WINNER_ORDER, `e.occurred_at DESC, (e.state = 'unsubscribed') DESC, e.id DESC`)

  const rows = (events: Ranked[]) =>
    events.map((e) => [e.occurredAt.toISOString(), e.state, e.seq.toString()])
  // The guard: (excluded ...) > (s ...), on every pair of a set of cases.
  const guard = `SELECT ${beatsSql(stateColumns('x'), stateColumns('s'))} AS wins
                   FROM (VALUES ($1::timestamptz, $2::text, $3::bigint)) AS x(occurred_at, state, event_seq),
                        (VALUES ($4::timestamptz, $5::text, $6::bigint)) AS s(occurred_at, state, event_seq)`
  await fc.assert(
    fc.asyncProperty(ranked, ranked, async (a, b) => {
      const { rows: r } = await client.query<{ wins: boolean }>(guard, [...rows([a])[0]!, ...rows([b])[0]!])
      return r[0]!.wins === beats(a, b)
    }),
    { numRuns: 200 },
  )
  t.pass('guard agrees with beats()')

  // The ORDER BY: PostgreSQL's first row is the TS winner, and the whole order is the TS order.
  const order = `SELECT e.id::text AS id
                   FROM unnest($1::timestamptz[], $2::text[], $3::bigint[]) AS e(occurred_at, state, id)
                  ORDER BY ${WINNER_ORDER}`
  const events = fc
    .array(ranked, { minLength: 1, maxLength: 8 })
    .map((es) => es.map((e, i) => ({ ...e, seq: BigInt(i + 1) }))) // ledger ids are unique
  await fc.assert(
    fc.asyncProperty(events, async (es) => {
      const r = rows(es)
      const { rows: got } = await client.query<{ id: string }>(order, [r.map((x) => x[0]), r.map((x) => x[1]), r.map((x) => x[2])])
      const want = [...es].sort((a, b) => compareRank(b, a)).map((e) => e.seq.toString())
      return JSON.stringify(got.map((g) => g.id)) === JSON.stringify(want)
    }),
    { numRuns: 200 },
  )
  t.pass('ORDER BY agrees with compareRank()')
  t.equal(eventColumns('e').seq, 'e.id')
})

t.test('the rule, by example', async (t) => {
  const at = (ms: number, state: string, seq: bigint): Ranked => ({ occurredAt: new Date(base + ms), state, seq })
  t.ok(beats(at(1, 'subscribed', 1n), at(0, 'unsubscribed', 2n)), 'later occurred_at wins')
  t.ok(beats(at(0, 'unsubscribed', 1n), at(0, 'subscribed', 2n)), 'same instant: unsubscribed wins')
  t.ok(beats(at(0, 'subscribed', 2n), at(0, 'subscribed', 1n)), 'then the later ledger id')
  t.notOk(beats(at(0, 'subscribed', 1n), at(0, 'subscribed', 1n)), 'an event does not beat itself')
})
