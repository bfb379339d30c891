/**
 * The ledger writes most of its statements' arrays as array literals it builds itself
 * (tokenArray), and leaves the rest to node-postgres. Whatever it builds, PostgreSQL must read back
 * exactly the elements it was given: a comma, a quote, a brace, a space or an unquoted "NULL" inside
 * one element would otherwise split it, change it or turn it into a null.
 */
import t from 'tap'
import fc from 'fast-check'
import pg from 'pg'
import { freshDatabase } from '../helpers/db.js'
import { tokenArray } from '../../src/ledger/token-array.js'

t.test('tokenArray: PostgreSQL reads back exactly the elements, or the array is left to node-postgres', async (t) => {
  const { url } = await freshDatabase(t)
  const client = new pg.Client(url)
  await client.connect()
  t.teardown(() => client.end())

  // Tokens (what the ledger sends: ids, hashes, enums, ISO times), near-tokens and any text.
  const element = fc.oneof(
    fc.stringMatching(/^[\w.:+-]{1,20}$/),
    fc.constantFrom('NULL', 'null', 'NuLl', '', ',', 'a,b', '{x}', '"q"', 'a b', 'back\\slash', '2026-12-02T10:28:42.091Z'),
    fc.string({ maxLength: 12 }),
    fc.constant(null),
    fc.integer(),
    fc.boolean(),
  )
  let built = 0
  await fc.assert(
    fc.asyncProperty(fc.array(element, { maxLength: 8 }), async (values) => {
      const out = tokenArray(values)
      if (typeof out === 'string') built++
      else t.equal(out, values, 'what it does not build, it returns unchanged')
      const { rows } = await client.query<{ a: (string | null)[] }>('SELECT $1::text[] AS a', [out])
      t.same(rows[0]!.a, values.map((v) => (v === null ? null : String(v))))
    }),
    { numRuns: 300 },
  )
  t.ok(built > 50, `built the literal itself for most arrays of tokens (${built} of 300)`)

  t.equal(tokenArray([]), '{}')
  t.equal(tokenArray(['a', null, 3, true]), '{a,NULL,3,true}')
  t.same(tokenArray(['a,b']), ['a,b'], 'an element with a comma is left to node-postgres')
  t.same(tokenArray(['x', 'null']), ['x', 'null'], 'an element that reads as NULL is left to node-postgres')
  t.same(tokenArray(['x', '']), ['x', ''], 'an empty element is left to node-postgres')
})
