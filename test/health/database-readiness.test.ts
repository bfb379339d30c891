/** Readiness of the database: reachable and migrated, or why not. */
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.js'
import { databaseReadiness } from '../../src/health/database-readiness.js'
import type { Sql } from '../../src/db/sql.js'

t.test('database readiness', async (t) => {
  const { app } = await buildTestApp(t)
  t.same(await databaseReadiness(app.database.sql), { database: 'ok', migrations: 'current' })

  const down = { query: async () => Promise.reject(new Error('connection refused')) } as unknown as Sql
  t.same(await databaseReadiness(down), { database: 'unreachable', migrations: 'unknown' })
})
