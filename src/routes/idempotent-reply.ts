/**
 * Runs a write route's work under its Idempotency-Key and sends the (possibly replayed) answer: the
 * one mechanism every write route uses (consent writes, Braze writes, native creates). The request's
 * identity is its method, route pattern, path parameters and body, so the same key on another
 * `/workspaces/{id}/...` is a different request (422), never the other one's replay.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Sql } from '../db/sql.js'
import type { IdempotentResult } from '../idempotency/idempotency.js'

function routeOf(request: FastifyRequest): string {
  const route = request.routeOptions.url ?? request.url
  const params = request.params as Record<string, unknown> | undefined
  return params && Object.keys(params).length > 0 ? `${route} ${JSON.stringify(params)}` : route
}

export async function replyIdempotent(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  work: (tx: Sql) => Promise<IdempotentResult>,
) {
  const header = request.headers['idempotency-key']
  const out = await app.idempotency.run(
    {
      workspaceId: request.principal.workspaceId,
      key: Array.isArray(header) ? header[0] : header,
      method: request.method,
      route: routeOf(request),
      body: request.body,
    },
    work,
  )
  if (out.replayed) reply.header('idempotent-replayed', 'true')
  return reply.code(out.statusCode).send(out.body)
}
