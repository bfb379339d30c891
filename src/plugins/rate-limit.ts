/**
 * @fastify/rate-limit per API key (per IP when unauthenticated), with x-ratelimit-* and retry-after
 * on 429 (and x-ratelimit-* on every answer with RATE_LIMIT_HEADERS=always). With REDIS_URL the
 * counters live in Redis so several instances share one limit.
 * Registered and awaited before the routes (fastify-rate-limit#362).
 */
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { Redis } from 'ioredis'
import { DomainError } from '../errors/domain-error.js'

export default fp(
  async (app) => {
    const cfg = app.config
    const always = cfg.RATE_LIMIT_HEADERS === 'always'
    const redis = cfg.REDIS_URL ? new Redis(cfg.REDIS_URL, { connectTimeout: 500, maxRetriesPerRequest: 1, lazyConnect: false }) : undefined
    if (redis) app.addHook('onClose', async () => void redis.quit())
    await app.register(rateLimit, {
      global: true,
      // A key's own limit when it has one (POST /api-keys `rate_limit_max`), else the default.
      max: (request) => request.principal?.rateLimitMax ?? cfg.RATE_LIMIT_MAX,
      timeWindow: cfg.RATE_LIMIT_WINDOW_MS,
      redis,
      nameSpace: 'consent-ledger-rl:',
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
  { name: 'rate-limit', dependencies: ['config', 'auth'] },
)
