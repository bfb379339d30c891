/**
 * WhatsApp business numbers (docs/webhook.md): `POST|GET /whatsapp/numbers`,
 * `GET /whatsapp/numbers/{phone_number_id}`, and for the operator (root key)
 * `POST /workspaces/{id}/whatsapp/numbers`. Who receives a number's webhooks is in
 * src/webhook/numbers-repository.ts and docs/webhook.md: the operator's mappings receive the
 * payloads signed with the operator's app secret, a workspace's own mapping (a claim) only those
 * signed with its own. Mapping again answers 200 (the display number updated if given); a
 * workspace never learns whether another has the number (no 409 for it); the operator gets 409
 * `phone_number_mapped_elsewhere` when it already mapped the number to another workspace.
 * Admin scope to map (it decides whose ledger Meta's signals land in), consent:read to list.
 * After the mapping commits, the inbox payloads kept as `unmapped` for this number are processed
 * in the same request (a crash in between: the inbox sweep does it at the next start).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import { IdParams, errorResponses } from '../../schemas/common.js'
import { CreateWhatsAppNumberSchema, NumberParams, WhatsAppNumberSchema } from '../../schemas/webhook.js'
import { notFound } from '../../errors/domain-error.js'
import { toNumberDto } from '../../webhook/numbers-repository.js'
import { DEFAULT_WORKSPACE_ID } from '../../auth/api-keys.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

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
          'Accepts `Idempotency-Key`. 201 when mapped now, 200 when it already was this workspace\'s. ' +
          'In the operator\'s workspace (`default`) the mapping is an operator mapping (409 when the operator mapped the number to another workspace); ' +
          'in any other workspace it is a claim: it receives only webhooks signed with this workspace\'s own app secret (`PUT /settings/whatsapp`), ' +
          'is `pending` until one names it, and never tells whether another workspace has the number. ' +
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
          const p = request.principal
          const by = p.isRoot || p.workspaceId === DEFAULT_WORKSPACE_ID ? 'operator' : 'workspace'
          const { row, created } = await repo.map(tx, p.workspaceId, request.body.phone_number_id, request.body.display_phone_number, by)
          return { statusCode: created ? 201 : 200, body: toNumberDto(row) }
        },
      )
      const reprocessed = await app.whatsapp.processor.afterMapping(request.body.phone_number_id, { requestId: request.id, log: request.log })
      if (reprocessed > 0) request.log.info({ reprocessed, phoneNumberId: request.body.phone_number_id }, 'unmapped webhook payloads reprocessed')
      if (out.replayed) reply.header('idempotent-replayed', 'true')
      return reply.code(out.statusCode === 201 ? 201 : 200).send(out.body as ReturnType<typeof toNumberDto>)
    },
  )

  app.post(
    '/workspaces/:id/whatsapp/numbers',
    {
      config: { root: true },
      schema: {
        tags: ['administration'],
        summary: "Map a WhatsApp business number to a workspace as the operator (root key only)",
        description:
          'The workspace receives the webhooks of this number signed with the operator\'s app secret (WHATSAPP_APP_SECRETS). ' +
          '201 when mapped now (or a claim of the workspace became an operator mapping), 200 when it already was; ' +
          '409 when the operator mapped it to another workspace. Payloads kept as `unmapped` are processed before the answer.',
        params: IdParams,
        body: CreateWhatsAppNumberSchema,
        response: { 200: WhatsAppNumberSchema, 201: WhatsAppNumberSchema, ...errorResponses(404, 409, 415) },
      },
    },
    async (request, reply) => {
      const id = request.params.id
      if (!UUID.test(id)) throw notFound('workspace')
      const workspaceId = id.toLowerCase()
      const { row, created } = await app.operatorNumbers.map(workspaceId, request.body.phone_number_id, request.body.display_phone_number)
      await app.whatsapp.processor.afterMapping(request.body.phone_number_id, { requestId: request.id, log: request.log })
      return reply.code(created ? 201 : 200).send(toNumberDto(row))
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
