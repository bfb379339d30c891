/** The per-file database helper: migrated schema present, and two clones share nothing. */
import t from 'tap'
import { freshDatabase, withClient } from './db.js'

t.test('a fresh database is cloned from the migrated template', async (t) => {
  const { url } = await freshDatabase(t)
  const tables = await withClient(url, async (c) => {
    const { rows } = await c.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    return rows.map((r) => r.table_name)
  })
  t.ok(tables.includes('consent_events'), 'consent_events exists')
  const applied = await withClient(url, (c) => c.query('SELECT 1 FROM drizzle.__drizzle_migrations'))
  t.ok(applied.rowCount, 'the migration journal came with the clone')
})

t.test('two fresh databases are isolated', async (t) => {
  const a = await freshDatabase(t)
  const b = await freshDatabase(t)
  t.not(a.name, b.name)
  await withClient(a.url, async (c) => {
    await c.query('CREATE TABLE scratch (v text)')
    await c.query("INSERT INTO scratch VALUES ('only in a')")
  })
  const inB = await withClient(b.url, (c) => c.query("SELECT to_regclass('public.scratch') AS t"))
  t.equal(inB.rows[0].t, null, 'a table created in one database is absent from the other')
  const inA = await withClient(a.url, (c) => c.query('SELECT v FROM scratch'))
  t.same(inA.rows, [{ v: 'only in a' }])
})
