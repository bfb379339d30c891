/**
 * `GET|PUT /settings/keywords` (DESIGN §5): the workspace's keyword rules. GET needs consent:read
 * and answers the defaults (STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT,
 * OPT OUT → opt-out all; STOP PROMOTIONS → opt-out marketing; START, UNSTOP → opt-in) until a PUT
 * stores a document. PUT (admin) replaces the whole document: keywords are stored normalised and
 * upper-case; a keyword that normalises to nothing, a duplicate, or a scope naming a group that is
 * not a WhatsApp group of this workspace answers 422 with JSON pointers and changes nothing.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import { KeywordSettingsSchema } from '../../schemas/keywords.js'
import { readKeywordSettings, writeKeywordSettings } from '../../webhook/keyword-settings-repository.js'
import { replyIdempotent } from '../idempotent-reply.js'

const keywordSettings: FastifyPluginAsyncTypebox = async (app) => {
  const tags = ['settings']

  app.get(
    '/settings/keywords',
    {
      config: { scope: 'consent:read' },
      schema: { tags, summary: "Read the workspace's keyword rules (defaults until set)", response: { 200: KeywordSettingsSchema, ...errorResponses() } },
    },
    async (request) => readKeywordSettings(app.database.sql, request.principal.workspaceId),
  )

  app.put(
    '/settings/keywords',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "Replace the workspace's keyword rules",
        description: 'Accepts `Idempotency-Key`. Keywords are stored normalised and upper-case.',
        body: KeywordSettingsSchema,
        response: { 200: KeywordSettingsSchema, ...errorResponses(409, 415, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => ({
        statusCode: 200,
        body: await writeKeywordSettings(tx, request.principal.workspaceId, request.body),
      })),
  )
}

export default keywordSettings
