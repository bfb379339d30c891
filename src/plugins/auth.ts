/**
 * API-key authentication (docs/architecture.md): `Authorization: Bearer <key>`. Missing, unknown or revoked:
 * 401. Known key without the scope: 403. Routes declare `config.scope` (or `config.root` for the
 * workspace administration that only the bootstrap key may do); routes with neither are public.
 *
 * Each protected route gets its own onRequest hook when it is added (as @fastify/rate-limit does):
 * public routes run no auth code, and a protected one knows its scope without reading the route's
 * options per request. The hook is callback-style and answers synchronously when the key was seen
 * lately (src/auth/api-keys.ts): the pre-send check pays no promise or hashing for it.
 * Failed authentications are limited per client address (AUTH_FAILURE_MAX per
 * AUTH_FAILURE_WINDOW_MS, then 429 with Retry-After and no lookup: src/auth/failure-limiter.ts).
 */
import fp from 'fastify-plugin'
import { withFirst } from './route-hooks.js'
import type { FastifyRequest, onRequestHookHandler } from 'fastify'
import { hasScope, type Principal, type Scope } from '../auth/api-keys.js'
import { DomainError, forbidden, unauthorized } from '../errors/domain-error.js'
import { createAuthFailureLimiter } from '../auth/failure-limiter.js'

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal
  }
  interface FastifyContextConfig {
    /** Scope the route requires. */
    scope?: Scope
    /** Only the root (bootstrap) key. */
    root?: boolean
  }
}

const BEARER = /^Bearer\s+(\S+)\s*$/i

export default fp(
  async (app) => {
    app.decorateRequest('principal', null as unknown as Principal)

    /** The request's error when `principal` may not call the route, else undefined (and it is set). */
    function admit(request: FastifyRequest, principal: Principal | null, scope: Scope | undefined, root: boolean): Error | undefined {
      if (!principal) return unauthorized('The API key is unknown or revoked.')
      request.principal = principal
      if (root && !principal.isRoot) return forbidden('Only the root key (CONSENT_ADMIN_KEY) may manage workspaces.')
      if (scope && !hasScope(principal, scope)) return forbidden(`This API key lacks the scope ${scope}.`)
      return undefined
    }

    const failures = createAuthFailureLimiter({ max: app.config.AUTH_FAILURE_MAX, windowMs: app.config.AUTH_FAILURE_WINDOW_MS })

    /** A 401 counts against the client's address (src/auth/failure-limiter.ts). */
    function refuse(request: FastifyRequest, err: Error | undefined): Error | undefined {
      if (err instanceof DomainError && err.statusCode === 401) failures.fail(request.ip)
      return err
    }

    function hookFor(scope: Scope | undefined, root: boolean): onRequestHookHandler {
      return (request, _reply, done) => {
        const header = request.headers.authorization
        const m = header ? BEARER.exec(header) : null
        const key = m?.[1]
        const hit = key === undefined ? undefined : app.apiKeys.cached(key)
        // A known good key passes even from an address that failed too often (it costs no lookup).
        if (hit) return done(admit(request, hit, scope, root))
        const wait = failures.blockedFor(request.ip)
        if (wait > 0) {
          return done(
            new DomainError(429, 'too_many_failed_authentications', `Too many failed authentications from this address; retry in ${wait} s.`, undefined, {
              'retry-after': String(wait),
            }),
          )
        }
        if (key === undefined) return done(refuse(request, unauthorized()))
        if (hit === null) return done(refuse(request, admit(request, hit, scope, root)))
        app.apiKeys.authenticate(key).then((principal) => done(refuse(request, admit(request, principal, scope, root))), done)
      }
    }

    // Route-level onRequest hooks run after the global ones (request id, shutdown) and before the
    // rate limiter's preHandler, which keys on the principal. Auth goes first among the route's own.
    app.addHook('onRoute', (route) => {
      const cfg = route.config
      if (!cfg?.scope && !cfg?.root) return
      route.onRequest = withFirst(hookFor(cfg.scope, cfg.root === true), route.onRequest)
    })
  },
  { name: 'auth', dependencies: ['config', 'services'] },
)
