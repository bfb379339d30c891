/**
 * migrations/functions/*.sql is where a reader finds the current definition of every SQL function
 * and trigger, without replaying the migrations. This test keeps it true: the migrated database's
 * functions and triggers, as PostgreSQL itself renders them (pg_get_functiondef, pg_get_triggerdef),
 * equal those the files create, none missing on either side. So a migration that changes a function
 * without the file (or the file without a migration) fails here.
 *
 * The comparison is PostgreSQL's, not ours: the files run on a migrated database whose functions
 * and triggers were dropped, and both sides are read back through the same catalog functions, so
 * layout, comments outside the body, quoting and the order of SET clauses do not matter, while the
 * body, signature, return type, volatility, settings and each trigger's table, timing, events,
 * WHEN condition and enabled state do.
 */
import t from 'tap'
import type pg from 'pg'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { migrationsFolder } from '../../src/db/migrate.js'
import { freshDatabase, withClient } from '../helpers/db.js'

const functionsFolder = join(migrationsFolder, 'functions')
const files = readdirSync(functionsFolder).filter((f) => f.endsWith('.sql')).sort()

/** A file's statements, split as drizzle's migrator splits a migration (so a file can be one). */
function statementsOf(file: string): string[] {
  return readFileSync(join(functionsFolder, file), 'utf8')
    .split('--> statement-breakpoint')
    .filter((s) => s.trim() !== '')
}

/**
 * Every function and trigger of the public schema (extensions' own functions aside), keyed
 * `function name(arg types)` / `trigger table.name`, with its definition as PostgreSQL renders it.
 */
async function definitions(c: pg.Client): Promise<Map<string, string>> {
  const { rows } = await c.query<{ key: string; def: string }>(
    `SELECT 'function ' || p.oid::regprocedure AS key, pg_get_functiondef(p.oid) AS def
       FROM pg_proc p
      WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                         WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
     UNION ALL
     SELECT 'trigger ' || tg.tgrelid::regclass || '.' || tg.tgname,
            pg_get_triggerdef(tg.oid) || ' -- enabled: ' || tg.tgenabled::text
       FROM pg_trigger tg JOIN pg_class r ON r.oid = tg.tgrelid
      WHERE r.relnamespace = 'public'::regnamespace AND NOT tg.tgisinternal
      ORDER BY 1`,
  )
  return new Map(rows.map((r) => [r.key, r.def]))
}

/** Drops every function of the public schema, and with them (CASCADE) the triggers that call them. */
async function dropAll(c: pg.Client, defs: Map<string, string>): Promise<void> {
  for (const key of defs.keys()) {
    if (key.startsWith('function ')) await c.query(`DROP FUNCTION ${key.slice('function '.length)} CASCADE`)
  }
}

t.test('migrations/functions holds one file per function, with the triggers that call it', async (t) => {
  t.ok(files.length > 0, 'there are files')
  for (const f of files) t.match(f, /^[a-z_][a-z0-9_]*\.sql$/, `${f}: named for its function`)
})

t.test('the migrated database has exactly the functions and triggers of migrations/functions', async (t) => {
  const { url } = await freshDatabase(t)
  await withClient(url, async (c) => {
    const migrated = await definitions(c)
    t.ok([...migrated.keys()].some((k) => k.startsWith('trigger ')), 'the migrated database has triggers')

    await dropAll(c, migrated)
    t.same([...(await definitions(c)).keys()], [], 'no function or trigger left once the functions are dropped')

    // Each file on its own, in turn: what it adds is its own, and it must add its namesake function.
    const fromFiles = new Map<string, string>()
    for (const file of files) {
      for (const statement of statementsOf(file)) await c.query(statement)
      const now = await definitions(c)
      const added = [...now.keys()].filter((k) => !fromFiles.has(k))
      const name = file.slice(0, -'.sql'.length)
      t.ok(
        added.some((k) => k.startsWith(`function ${name}(`)),
        `${file} creates the function ${name} (and no other file already did)`,
      )
      for (const k of added) fromFiles.set(k, now.get(k)!)
    }

    const missing = [...migrated.keys()].filter((k) => !fromFiles.has(k))
    const extra = [...fromFiles.keys()].filter((k) => !migrated.has(k))
    t.same(missing, [], 'every function and trigger of the migrated database has its file in migrations/functions')
    t.same(extra, [], 'migrations/functions creates nothing the migrations do not')
    for (const [key, def] of migrated) {
      if (fromFiles.has(key)) t.equal(fromFiles.get(key), def, `${key}: migrations/functions equals the migrations`)
    }
  })
})

t.test('the files can be applied to a migrated database as they are, and change nothing', async (t) => {
  // What a new migration that copies a file does: CREATE OR REPLACE for functions and triggers alike.
  const { url } = await freshDatabase(t)
  await withClient(url, async (c) => {
    const before = await definitions(c)
    for (const file of files) {
      for (const statement of statementsOf(file)) await c.query(statement)
    }
    t.same(Object.fromEntries(await definitions(c)), Object.fromEntries(before))
  })
})
