/**
 * Prometheus metrics via prom-client, on a registry owned by this app instance (tests build many):
 * requests by route and status, latency histograms (src/plugins/request-stats.ts), ledger appends by
 * source, database pool use.
 * https://github.com/siimon/prom-client
 */
import fp from 'fastify-plugin'
import type { onResponseHookHandler } from 'fastify'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { createRequestStats } from './request-stats.js'
import { withFirst } from './route-hooks.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: {
      registry: Registry
      ledgerAppends: Counter<'source'>
    }
  }
}

export default fp(
  async (app) => {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    const stats = createRequestStats(registry)
    const ledgerAppends = new Counter({
      name: 'ledger_appends_total',
      help: 'Events appended to the consent ledger, by source',
      labelNames: ['source'] as const,
      registers: [registry],
    })
    new Gauge({
      name: 'db_pool_connections',
      help: 'Database pool connections by state',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const s = app.database.poolStats()
        this.set({ state: 'total' }, s.total)
        this.set({ state: 'idle' }, s.idle)
        this.set({ state: 'waiting' }, s.waiting)
      },
    })
    app.decorate('metrics', { registry, ledgerAppends })

    // Each route records under its own pattern (never the raw URL: bounded label cardinality),
    // through an onResponse hook added when the route is (src/plugins/request-stats.ts says why).
    app.addHook('onRoute', (route) => {
      const record = stats.forRoute(route.url)
      const hook: onResponseHookHandler = (request, reply, done) => {
        record(request.method, reply.statusCode, reply.elapsedTime / 1000)
        done()
      }
      route.onResponse = withFirst(hook, route.onResponse)
    })
    // Requests that matched no route (404s) under one label; on matched routes
    // this hook returns at once.
    const unmatched = stats.forRoute('unmatched')
    app.addHook('onResponse', (request, reply, done) => {
      if (request.is404) unmatched(request.method, reply.statusCode, reply.elapsedTime / 1000)
      done()
    })
  },
  { name: 'metrics', dependencies: ['db'] },
)
