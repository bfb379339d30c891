/**
 * What /readyz reports about PostgreSQL: reachable or not, and whether every migration ran (an
 * instance that started against an older schema must not take traffic).
 */
import type { Sql } from '../db/sql.js'
import { migrationsCurrent } from '../db/migrate.js'

export interface DatabaseReadiness {
  database: 'ok' | 'unreachable'
  migrations: 'current' | 'pending' | 'unknown'
}

export async function databaseReadiness(sql: Sql): Promise<DatabaseReadiness> {
  try {
    await sql.query('SELECT 1')
    return { database: 'ok', migrations: (await migrationsCurrent(sql)) ? 'current' : 'pending' }
  } catch {
    return { database: 'unreachable', migrations: 'unknown' }
  }
}
