/**
 * WhatsApp business numbers (DESIGN §3.3): `POST|GET /whatsapp/numbers`,
 * `GET /whatsapp/numbers/{phone_number_id}`. Mapping a number routes its webhooks to this
 * workspace. A number belongs to one workspace: mapping it again here answers 200 (the display
 * number updated if given), mapping another workspace's answers 409 `phone_number_mapped_elsewhere`.
 * Admin scope to map (it decides whose ledger Meta's signals land in), consent:read to list.
 * After the mapping commits, the inbox payloads kept as `unmapped` for this number are processed
 * in the same request (a crash in between: the inbox sweep does it at the next start).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import { CreateWhatsAppNumberSchema, NumberParams, WhatsAppNumberSchema } from '../../schemas/webhook.js'
import { notFound } from '../../errors/domain-error.js'
import { toNumberDto } from '../../webhook/numbers-repository.js'

const numbers: FastifyPluginAsyncTypebox = async (app) => {
  const tags = ['whatsapp numbers']
  const repo = app.whatsapp.numbers

  app.post(
    '/whatsapp/numbers',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Map a WhatsApp business number to this workspace',
        description:
          'Accepts `Idempotency-Key`. 201 when mapped now, 200 when it already was this workspace\'s, 409 when it belongs to another workspace. ' +
          'Webhook payloads kept for this number as `unmapped` are processed before the answer.',
        body: CreateWhatsAppNumberSchema,
        response: { 200: WhatsAppNumberSchema, 201: WhatsAppNumberSchema, ...errorResponses(409, 415, 422) },
      },
    },
    async (request, reply) => {
      const header = request.headers['idempotency-key']
      const out = await app.idempotency.run(
        {
          workspaceId: request.principal.workspaceId,
          key: Array.isArray(header) ? header[0] : header,
          method: request.method,
          route: request.routeOptions.url ?? request.url,
          body: request.body,
        },
        async (tx) => {
          const { row, created } = await repo.map(tx, request.principal.workspaceId, request.body.phone_number_id, request.body.display_phone_number)
          return { statusCode: created ? 201 : 200, body: toNumberDto(row) }
        },
      )
      const reprocessed = await app.whatsapp.processor.afterMapping(request.body.phone_number_id, { requestId: request.id, log: request.log })
      if (reprocessed > 0) request.log.info({ reprocessed, phoneNumberId: request.body.phone_number_id }, 'unmapped webhook payloads reprocessed')
      if (out.replayed) reply.header('idempotent-replayed', 'true')
      return reply.code(out.statusCode === 201 ? 201 : 200).send(out.body as ReturnType<typeof toNumberDto>)
    },
  )

  app.get(
    '/whatsapp/numbers',
    {
      config: { scope: 'consent:read' },
      schema: { tags, summary: "List this workspace's WhatsApp business numbers", response: { 200: Type.Object({ numbers: Type.Array(WhatsAppNumberSchema) }), ...errorResponses() } },
    },
    async (request) => ({ numbers: (await repo.list(request.principal.workspaceId)).map(toNumberDto) }),
  )

  app.get(
    '/whatsapp/numbers/:phone_number_id',
    {
      config: { scope: 'consent:read' },
      schema: { tags, summary: 'Read one WhatsApp business number of this workspace', params: NumberParams, response: { 200: WhatsAppNumberSchema, ...errorResponses(404) } },
    },
    async (request) => {
      const row = await repo.get(request.principal.workspaceId, request.params.phone_number_id)
      if (!row) throw notFound('WhatsApp number')
      return toNumberDto(row)
    },
  )
}

export default numbers
