/**
 * What route modules share to register their routes: the instance type a route function takes
 * (with the TypeBox type provider, so bodies and queries are typed from their schemas), the
 * options of a route that needs one scope, and the context of a ledger append made for a request.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest, FastifySchema } from 'fastify'
import type { Scope } from '../auth/api-keys.js'
import type { AppendContext } from '../ledger/types.js'

/** The Fastify instance a route plugin receives. */
export type RouteApp = Parameters<FastifyPluginAsyncTypebox>[0]

/** Options of a route the caller's key needs `scope` for, documented by `schema`. */
export function scoped<S extends FastifySchema>(scope: Scope, schema: S): { config: { scope: Scope }; schema: S } {
  return { config: { scope }, schema }
}

/** Who appends, for the ledger: the caller's workspace and key, the request and its Idempotency-Key. */
export function appendContext(request: FastifyRequest): AppendContext {
  return {
    workspaceId: request.principal.workspaceId,
    actor: `key:${request.principal.keyId}`,
    requestId: request.id,
    idempotencyKey: request.headers['idempotency-key'] as string | undefined,
  }
}
