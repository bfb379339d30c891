/**
 * Prometheus metrics via prom-client, on a registry owned by this app instance (tests build many):
 * requests by route and status, latency histograms, ledger appends by source, database pool use.
 * https://github.com/siimon/prom-client
 */
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

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
    const requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    })
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by method, route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    })
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

    app.addHook('onResponse', (request, reply, done) => {
      // The route pattern, never the raw URL (bounded label cardinality).
      const route = request.routeOptions.url ?? 'unmatched'
      const labels = { method: request.method, route, status: String(reply.statusCode) }
      requests.inc(labels)
      duration.observe(labels, reply.elapsedTime / 1000)
      done()
    })
  },
  { name: 'metrics', dependencies: ['db'] },
)
