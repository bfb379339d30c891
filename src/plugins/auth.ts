/**
 * API-key authentication (DESIGN §1): `Authorization: Bearer <key>`. Missing, unknown or revoked:
 * 401. Known key without the scope: 403. Routes declare `config.scope` (or `config.root` for the
 * workspace administration that only the bootstrap key may do); routes with neither are public.
 */
import fp from 'fastify-plugin'
import { hasScope, type Principal, type Scope } from '../auth/api-keys.js'
import { forbidden, unauthorized } from '../errors/domain-error.js'

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

export default fp(
  async (app) => {
    app.decorateRequest('principal', null as unknown as Principal)
    // onRequest, before body parsing and before the rate limiter (which keys on the principal).
    app.addHook('onRequest', async (request) => {
      const cfg = request.routeOptions.config
      if (!cfg?.scope && !cfg?.root) return
      const header = request.headers.authorization
      const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
      if (!m) throw unauthorized()
      const principal = await app.apiKeys.authenticate(m[1]!)
      if (!principal) throw unauthorized('The API key is unknown or revoked.')
      request.principal = principal
      if (cfg.root && !principal.isRoot) throw forbidden('Only the root key (CONSENT_ADMIN_KEY) may manage workspaces.')
      if (cfg.scope && !hasScope(principal, cfg.scope)) throw forbidden(`This API key lacks the scope ${cfg.scope}.`)
    })
  },
  { name: 'auth', dependencies: ['services'] },
)
