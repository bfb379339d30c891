/** Liveness, readiness and Prometheus metrics (DESIGN §3.7). Public, not rate limited. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import { migrationsCurrent } from '../db/migrate.js'

const Health = Type.Object({ status: Type.String() })
const Ready = Type.Object({ status: Type.String(), database: Type.String(), migrations: Type.String() })

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/healthz', { config: { rateLimit: false }, schema: { tags: ['operations'], security: [], response: { 200: Health } } }, async () => ({ status: 'ok' }))

  app.get(
    '/readyz',
    { config: { rateLimit: false }, schema: { tags: ['operations'], security: [], response: { 200: Ready, 503: Ready } } },
    async (_request, reply) => {
      let database = 'ok'
      let migrations = 'current'
      try {
        await app.database.sql.query('SELECT 1')
        if (!(await migrationsCurrent(app.database.sql))) migrations = 'pending'
      } catch {
        database = 'unreachable'
        migrations = 'unknown'
      }
      const ok = database === 'ok' && migrations === 'current'
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', database, migrations })
    },
  )

  app.get(
    '/metrics',
    { config: { rateLimit: false }, schema: { tags: ['operations'], security: [], produces: ['text/plain'], response: { 200: Type.String() } } },
    async (_request, reply) => {
      reply.type(app.metrics.registry.contentType)
      return app.metrics.registry.metrics()
    },
  )
}

export default health
