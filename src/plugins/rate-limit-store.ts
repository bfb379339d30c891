/**
 * The Redis store of @fastify/rate-limit, watched: every answer of Redis tells whether the shared
 * limit is being enforced. When Redis is unreachable the limiter fails open (skipOnError): requests
 * are served unlimited rather than refused, because the pre-send check and the writes answer from
 * PostgreSQL and must not go down with a cache. The outage is visible instead: one warn line when
 * it starts and one info line when it ends, `consent_rate_limit_store_errors_total` and the
 * `consent_rate_limit_degraded` gauge, and /readyz's `rate_limit` field. See docs/operations.md.
 */
import { createRequire } from 'node:module'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { Counter, Gauge, type Registry } from 'prom-client'

type Callback = (err: Error | null, res?: { current: number; ttl: number }) => void

/** The store interface @fastify/rate-limit calls (its RedisStore and LocalStore implement it). */
interface Store {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void
  read?(key: string, cb: Callback, timeWindow: number, max: number): void
  child(routeOptions: unknown): Store
}

// The plugin exports no store classes; its RedisStore (the Lua script shared by every instance) is
// used as shipped rather than copied.
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore') as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  redis: Redis,
  key: string,
) => Store

export interface RateLimitHealth {
  /** `redis` (shared limit) or `memory` (this instance only). */
  readonly store: 'redis' | 'memory'
  /** True while the shared store fails: limits are not enforced (fail open). */
  readonly degraded: boolean
}

export function watchedRedisStore(opts: { redis: Redis; nameSpace: string; registry: Registry; log: FastifyBaseLogger }) {
  let degraded = false
  const errors = new Counter({
    name: 'consent_rate_limit_store_errors_total',
    help: 'Rate-limit store (Redis) operations that failed; each request was served without a limit (fail open)',
    registers: [opts.registry],
  })
  new Gauge({
    name: 'consent_rate_limit_degraded',
    help: '1 while the shared rate-limit store (Redis) is unreachable and limits are not enforced',
    registers: [opts.registry],
    collect() {
      this.set(health.degraded ? 1 : 0)
    },
  })
  // The connection's own events tell of an outage even when no request comes (ioredis reconnects
  // by itself, with backoff; without a listener it would print every failed attempt).
  opts.redis.on('error', enterDegraded)
  opts.redis.on('ready', succeeded)
  function failed(err: Error) {
    errors.inc()
    enterDegraded(err)
  }
  function enterDegraded(err: Error) {
    if (degraded) return
    degraded = true
    opts.log.warn({ err: { message: err.message } }, 'rate-limit store unreachable: serving requests without rate limits until it returns')
  }
  function succeeded() {
    if (!degraded) return
    degraded = false
    opts.log.info('rate-limit store reachable again: rate limits enforced')
  }
  const watch = (cb: Callback): Callback => (err, res) => {
    if (err) failed(err)
    else succeeded()
    cb(err, res)
  }

  class Watched implements Store {
    constructor(private readonly inner: Store) {}
    incr(key: string, cb: Callback, timeWindow: number, max: number) {
      this.inner.incr(key, watch(cb), timeWindow, max)
    }
    read(key: string, cb: Callback, timeWindow: number, max: number) {
      this.inner.read!(key, watch(cb), timeWindow, max)
    }
    child(routeOptions: unknown): Store {
      return new Watched(this.inner.child(routeOptions))
    }
  }

  const health: RateLimitHealth = {
    store: 'redis',
    get degraded() {
      return degraded || opts.redis.status !== 'ready'
    },
  }
  return {
    health,
    /** For @fastify/rate-limit's `store` option (it calls `new store(globalParams)`). */
    Store: class extends Watched {
      constructor(params: { continueExceeding?: boolean; exponentialBackoff?: boolean }) {
        super(new RedisStore(params.continueExceeding === true, params.exponentialBackoff === true, opts.redis, opts.nameSpace))
      }
    },
  }
}
