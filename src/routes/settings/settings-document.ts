/**
 * A workspace setting kept as one document: `GET` (consent:read) answers it, `PUT` (admin) replaces
 * it whole under the request's Idempotency-Key. The consent and keyword settings are both this
 * shape; each names its path, schema, texts and storage.
 */
import type { FastifyInstance } from 'fastify'
import type { Static, TSchema } from '@fastify/type-provider-typebox'
import type { Sql } from '../../db/sql.js'
import { errorResponses } from '../../schemas/common.js'
import { replyIdempotent } from '../idempotent-reply.js'

export interface SettingsDocument<S extends TSchema> {
  path: string
  schema: S
  readSummary: string
  writeSummary: string
  writeDescription: string
  read(workspaceId: string): Promise<Static<S>>
  /** Runs in the Idempotency-Key's transaction and answers the stored document. */
  write(tx: Sql, workspaceId: string, document: Static<S>): Promise<Static<S>>
}

export function registerSettingsDocument<S extends TSchema>(app: FastifyInstance, doc: SettingsDocument<S>): void {
  const tags = ['settings']
  // Typed as any schema: the generic S would make Fastify resolve the reply type per call site.
  const schema: TSchema = doc.schema

  app.get(
    doc.path,
    {
      config: { scope: 'consent:read' },
      schema: { tags, summary: doc.readSummary, response: { 200: schema, ...errorResponses() } },
    },
    async (request) => doc.read(request.principal.workspaceId),
  )

  app.put(
    doc.path,
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: doc.writeSummary,
        description: doc.writeDescription,
        body: schema,
        response: { 200: schema, ...errorResponses(409, 415, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => ({
        statusCode: 200,
        body: await doc.write(tx, request.principal.workspaceId, request.body as Static<S>),
      })),
  )
}
