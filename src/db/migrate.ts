/**
 * Applies migrations/ (drizzle-kit's journal) under a PostgreSQL advisory lock, so that several
 * instances starting at once migrate exactly once (drizzle's migrator takes no lock itself:
 * drizzle-team/drizzle-orm#874). Re-running is harmless: applied entries are skipped.
 */
import pg from 'pg'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import type { PGlite } from '@electric-sql/pglite'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Sql } from './sql.js'

/** migrations/ at the package root, found from src/ (tests) or dist/src/ (built) alike. */
export const migrationsFolder = (() => {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'migrations', 'meta', '_journal.json'))) return join(dir, 'migrations')
    dir = dirname(dir)
  }
  throw new Error('migrations/ folder not found')
})()

/** Arbitrary constant: the advisory lock key of "consent-ledger migrations". */
const MIGRATION_LOCK = 727_001_2024

export async function migratePostgres(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'consent-ledger-migrate' })
  // A connection lost mid-migration fails the statement in flight (and the start); without a
  // listener the client's 'error' event would also be an uncaught exception.
  client.on('error', () => {})
  await client.connect()
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
    try {
      await migratePg(drizzlePg(client), { migrationsFolder })
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK])
    }
  } finally {
    await client.end()
  }
}

/** PGlite is a single in-process connection: nothing can race, no lock needed. */
export async function migrateEmbedded(db: PGlite): Promise<void> {
  await migratePglite(drizzlePglite(db), { migrationsFolder })
}

/** Number of migrations in the journal shipped with this code. */
export function expectedMigrationCount(): number {
  const journal = JSON.parse(readFileSync(`${migrationsFolder}/meta/_journal.json`, 'utf8')) as { entries: unknown[] }
  return journal.entries.length
}

/** True when the database has every migration this code ships (readiness). */
export async function migrationsCurrent(sql: Sql): Promise<boolean> {
  try {
    const rows = await sql.query<{ n: string | number }>('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations')
    return Number(rows[0]?.n ?? 0) >= expectedMigrationCount()
  } catch {
    return false
  }
}
