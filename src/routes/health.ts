/**
 * Liveness, readiness and Prometheus metrics. Public, not rate limited. Readiness is what this
 * instance can serve: 503 when PostgreSQL is unreachable or migrations are not current; 200 with
 * `rate_limit: degraded` when only Redis is down (docs/operations.md).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'

const Health = Type.Object({ status: Type.String() })
const Ready = Type.Object({
  status: Type.String(),
  database: Type.String({ description: '`ok` or `unreachable`' }),
  migrations: Type.String({ description: '`current`, `pending` or `unknown`' }),
  rate_limit: Type.String({
    description:
      '`ok` (shared Redis store), `local` (in-process store, no REDIS_URL) or `degraded` (Redis unreachable: requests are served without rate limits; still ready)',
  }),
})

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/healthz', { config: { rateLimit: false }, schema: { tags: ['operations'], security: [], response: { 200: Health } } }, async () => ({ status: 'ok' }))

  app.get(
    '/readyz',
    { config: { rateLimit: false }, schema: { tags: ['operations'], security: [], response: { 200: Ready, 503: Ready } } },
    async (_request, reply) => {
      const { database, migrations } = await app.readiness.database()
      // Without Redis the instance still serves everything (limits fail open), so it stays ready.
      const limits = app.rateLimitHealth
      const rate_limit = limits.store === 'memory' ? 'local' : limits.degraded ? 'degraded' : 'ok'
      const ok = database === 'ok' && migrations === 'current'
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', database, migrations, rate_limit })
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
