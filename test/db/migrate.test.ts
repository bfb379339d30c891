/**
 * Migrations on PostgreSQL: from an EMPTY database (not the template), re-running is harmless, and
 * several migrators at once (instances starting together) apply each migration exactly once under
 * the advisory lock. Plus a check of the shipped journal itself.
 */
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expectedMigrationCount, migratePostgres, migrationsFolder } from '../../src/db/migrate.js'
import { adminUrl, databaseUrl, DB_PREFIX, dropDatabase, quoteIdent, readTemplateInfo, withClient } from '../helpers/db.js'

/** A brand-new empty database (no TEMPLATE clause: template1), dropped in teardown. */
async function emptyDatabase(t: Test): Promise<string> {
  // Named like freshDatabase's, so global-after.ts sweeps it if this file crashes.
  const { runId } = readTemplateInfo()
  const name = `${DB_PREFIX}t_${runId}_${randomBytes(5).toString('hex')}`
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)}`))
  t.teardown(() => withClient(adminUrl, (c) => dropDatabase(c, name)))
  return databaseUrl(name)
}

interface State {
  tables: string[]
  migrations: number
  distinctHashes: number
  triggers: string[]
}

async function stateOf(url: string): Promise<State> {
  return withClient(url, async (c) => {
    const tables = await c.query<{ t: string }>(
      `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    )
    const journal = await c.query<{ to_regclass: string | null }>(`SELECT to_regclass('drizzle.__drizzle_migrations')`)
    let migrations = 0
    let distinctHashes = 0
    if (journal.rows[0]?.to_regclass) {
      const m = await c.query<{ n: number; d: number }>(
        'SELECT count(*)::int AS n, count(DISTINCT hash)::int AS d FROM drizzle.__drizzle_migrations',
      )
      migrations = m.rows[0]!.n
      distinctHashes = m.rows[0]!.d
    }
    const triggers = await c.query<{ tgname: string }>(
      `SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`,
    )
    return { tables: tables.rows.map((r) => r.t), migrations, distinctHashes, triggers: triggers.rows.map((r) => r.tgname) }
  })
}

const EXPECTED_TABLES = ['api_keys', 'consent_events', 'ledger_dedupe', 'subscription_groups', 'workspaces']
const EXPECTED_TRIGGERS = [
  'consent_events_append_only',
  'consent_events_no_truncate',
  'ledger_dedupe_append_only',
  'ledger_dedupe_no_truncate',
  'subscription_groups_guard',
  'subscription_groups_no_delete',
]

function assertMigrated(t: Test, s: State) {
  for (const table of EXPECTED_TABLES) t.ok(s.tables.includes(table), `table ${table} exists`)
  t.equal(s.migrations, expectedMigrationCount(), 'one journal row per migration')
  t.equal(s.distinctHashes, expectedMigrationCount(), 'no migration recorded twice')
  for (const trg of EXPECTED_TRIGGERS) t.ok(s.triggers.includes(trg), `trigger ${trg} exists`)
}

t.test('an empty database really starts empty', async (t) => {
  const url = await emptyDatabase(t)
  const s = await stateOf(url)
  t.same(s, { tables: [], migrations: 0, distinctHashes: 0, triggers: [] })
})

t.test('migratePostgres on an empty database, then again: the second run changes nothing', async (t) => {
  const url = await emptyDatabase(t)
  await migratePostgres(url)
  const once = await stateOf(url)
  assertMigrated(t, once)
  await migratePostgres(url)
  t.same(await stateOf(url), once, 'a re-run is a no-op')

  // The append-only trigger is live, not just present.
  await withClient(url, async (c) => {
    await c.query(`INSERT INTO workspaces (id, name) VALUES (gen_random_uuid(), 'w')`)
    await c.query(`INSERT INTO ledger_dedupe (workspace_id, key) SELECT id, 'k' FROM workspaces`)
    await t.rejects(c.query('DELETE FROM ledger_dedupe'), { code: 'P0001', message: /append-only/ })
  })
})

t.test('concurrent migratePostgres calls on an empty database apply each migration once', async (t) => {
  const url = await emptyDatabase(t)
  const results = await Promise.allSettled([migratePostgres(url), migratePostgres(url), migratePostgres(url)])
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'fulfilled'],
    results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join('; '),
  )
  assertMigrated(t, await stateOf(url))
})

t.test('the shipped journal: increasing `when`, idx in order, a .sql file per entry', async (t) => {
  const journal = JSON.parse(readFileSync(join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as {
    dialect: string
    entries: Array<{ idx: number; when: number; tag: string }>
  }
  t.equal(journal.dialect, 'postgresql')
  t.ok(journal.entries.length >= 1)
  t.equal(journal.entries.length, expectedMigrationCount())
  for (const [i, e] of journal.entries.entries()) {
    t.equal(e.idx, i, `entry ${e.tag} has idx ${i}`)
    t.ok(existsSync(join(migrationsFolder, `${e.tag}.sql`)), `${e.tag}.sql exists`)
    // drizzle's migrator applies entries whose `when` is newer than the last applied one: a
    // non-increasing `when` would be silently skipped on databases that already have the previous.
    if (i > 0) t.ok(e.when > journal.entries[i - 1]!.when, `${e.tag}: when ${e.when} > ${journal.entries[i - 1]!.when}`)
  }
})
