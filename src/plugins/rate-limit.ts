/**
 * @fastify/rate-limit per API key (per IP when unauthenticated), with x-ratelimit-* and retry-after
 * on 429 (and x-ratelimit-* on every answer with RATE_LIMIT_HEADERS=always). With REDIS_URL the
 * counters live in Redis so several instances share one limit; when Redis is unreachable the limiter
 * fails open (src/plugins/rate-limit-store.ts, docs/operations.md).
 * Registered and awaited before the routes (fastify-rate-limit#362).
 */
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { Redis } from 'ioredis'
import { DomainError } from '../errors/domain-error.js'
import { watchedRedisStore, type RateLimitHealth } from './rate-limit-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Whether rate limits are enforced right now (/readyz reports it). */
    rateLimitHealth: RateLimitHealth
  }
}

const NAME_SPACE = 'consent-ledger-rl:'

export default fp(
  async (app) => {
    const cfg = app.config
    const always = cfg.RATE_LIMIT_HEADERS === 'always'
    // A request must never wait on a dead Redis: no offline queue (a command while disconnected
    // fails at once), short connect and command timeouts, one retry. ioredis reconnects by itself.
    const redis = cfg.REDIS_URL
      ? new Redis(cfg.REDIS_URL, { connectTimeout: 500, commandTimeout: 500, maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false })
      : undefined
    if (redis) app.addHook('onClose', async () => void (await redis.quit().catch(() => redis.disconnect())))
    const watched = redis ? watchedRedisStore({ redis, nameSpace: NAME_SPACE, registry: app.metrics.registry, log: app.log }) : undefined
    app.decorate('rateLimitHealth', watched?.health ?? { store: 'memory', degraded: false })
    // Start with the shared limit in force when Redis answers; a Redis that is down does not hold
    // up the start (the limiter fails open until it connects).
    if (redis && redis.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 1000)
        redis.once('ready', done)
        function done() {
          clearTimeout(timer)
          redis!.off('ready', done)
          resolve()
        }
      })
    }
    await app.register(rateLimit, {
      global: true,
      // A key's own limit when it has one (POST /api-keys `rate_limit_max`), else the default.
      max: (request) => request.principal?.rateLimitMax ?? cfg.RATE_LIMIT_MAX,
      timeWindow: cfg.RATE_LIMIT_WINDOW_MS,
      ...(watched ? { store: watched.Store } : {}),
      // Redis unreachable: serve the request unlimited (fail open; src/plugins/rate-limit-store.ts).
      skipOnError: true,
      // Per key once authenticated (the auth hook runs first), otherwise per client address.
      keyGenerator: (request) => (request.principal ? `key:${request.principal.keyId}` : `ip:${request.ip}`),
      hook: 'preHandler',
      // Headers on answers below the limit: off by default. Measured on the pre-send check
      // (bench/ab-check.mjs): the three headers cost ~7 us of server CPU per request (Fastify's and
      // Node's header handling), ~6% of its throughput, for a budget a client rarely reads.
      addHeadersOnExceeding: { 'x-ratelimit-limit': always, 'x-ratelimit-remaining': always, 'x-ratelimit-reset': always },
      errorResponseBuilder: (_request, context) =>
        new DomainError(429, 'rate_limited', `Rate limit of ${context.max} requests per ${context.after} exceeded; retry in ${context.after}.`),
      // /healthz, /readyz and /metrics opt out in their route config (rateLimit: false); an allowList
      // function would be awaited on every request of every route.
    })
  },
  { name: 'rate-limit', dependencies: ['config', 'auth', 'metrics'] },
)
