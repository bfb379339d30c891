/** Runs a write route's work under its Idempotency-Key and sends the (possibly replayed) answer. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Sql } from '../db/sql.js'
import type { IdempotentResult } from '../idempotency/idempotency.js'

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
      route: request.routeOptions.url ?? request.url,
      body: request.body,
    },
    work,
  )
  if (out.replayed) reply.header('idempotent-replayed', 'true')
  return reply.code(out.statusCode).send(out.body)
}
