/**
 * The database connection (fastify-plugin `db`). Opens PostgreSQL or embedded PGlite from config;
 * on the embedded database it applies migrations at start (PostgreSQL is migrated by `migrate`, or
 * at container start). Closes on app close.
 * https://orm.drizzle.team/docs/get-started-postgresql
 */
import fp from 'fastify-plugin'
import { openDatabase, type Database } from '../db/client.js'
import { migrateEmbedded } from '../db/migrate.js'

declare module 'fastify' {
  interface FastifyInstance {
    database: Database
  }
}

export default fp(
  async (app) => {
    const config = app.config
    const database = await openDatabase({
      databaseUrl: config.DATABASE_URL,
      dataDir: config.DATA_DIR,
      poolMax: config.DATABASE_POOL_MAX,
      connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
      onConnectionError: (err) => app.log.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'database connection lost'),
    })
    app.decorate('database', database)
    app.addHook('onClose', async () => {
      await database.close()
    })
    if (database.kind === 'pglite') await migrateEmbedded(database.pglite!)
  },
  { name: 'db', dependencies: ['config'] },
)
