/**
 * The database-level safety net: PostgreSQL's data exceptions (class 22) caused by a request value
 * answer 400 `invalid_value`, never 500, and never echo the driver's message.
 */
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.js'
import { toProblem } from '../../src/plugins/error-handler.js'
import { isConnectionError } from '../../src/db/connection-errors.js'

t.test('real PostgreSQL data exceptions map to 400 invalid_value', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const cases: [string, string, unknown[]][] = [
    ['22021', `SELECT $1::text`, ['a\u0000b']],
    ['22P05', `SELECT '"\\u0000"'::jsonb`, []],
    ['22P02', `SELECT $1::int`, ['1e999']],
    ['22008', `SELECT $1::timestamptz`, ['0000-01-01T00:00:00Z']],
    ['22003', `SELECT $1::int`, ['99999999999']],
  ]
  for (const [state, text, params] of cases) {
    const err = await sql.query(text, params).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(err, `${text} fails`)
    const p = toProblem(err as Error)
    t.equal(p.status, 400, `${state}: ${String(err)}`)
    t.equal(p.code, 'invalid_value')
    t.match(p.detail, /SQLSTATE 22/)
    t.notMatch(p.detail, String((err as Error).message), 'the driver message is not echoed')
  }
  // A NUL inlined into a query's text: the server answers 08P01 and the connection stays usable.
  // Not an outage (503, retried forever), a bad value.
  const proto = (await sql.query(`SELECT 'a\u0000b'`).catch((e: unknown) => e)) as { code?: string }
  t.equal(proto.code, '08P01')
  t.equal(isConnectionError(proto), false)
  t.match(toProblem(proto as Error), { status: 400, code: 'invalid_value' })
  t.same(await sql.query(`SELECT 1 AS one`), [{ one: 1 }], 'the pool still serves')
  // Wrapped (an error whose cause is the driver's) is recognised too.
  const inner = await sql.query(`SELECT $1::int`, ['x']).catch((e: unknown) => e)
  t.equal(toProblem(new Error('append failed', { cause: inner })).status, 400)
})

t.test('other errors keep their status: a code alone is not a data exception', async (t) => {
  t.equal(toProblem(Object.assign(new Error('x'), { code: '22021' })).status, 500, 'no severity: not a driver error')
  t.equal(toProblem(Object.assign(new Error('x'), { code: '23505', severity: 'ERROR' })).status, 500)
  t.equal(toProblem(new RangeError('Maximum call stack size exceeded')).status, 500)
})
