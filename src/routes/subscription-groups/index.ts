/** Subscription groups (docs/architecture.md): create, list, read, update, archive. Never deleted. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import { CreateGroupSchema, GroupSchema, PatchGroupSchema } from '../../schemas/admin.js'
import { IdParams, errorResponses } from '../../schemas/common.js'
import { toGroupDto } from '../../groups/group-service.js'
import { replyIdempotent } from '../idempotent-reply.js'

const groups: FastifyPluginAsyncTypebox = async (app) => {
  const tags = ['subscription groups']

  app.post(
    '/subscription-groups',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Create a subscription group',
        description: 'Accepts `Idempotency-Key`: the same key and body answers the first answer again and creates nothing; another body with it is 422.',
        body: CreateGroupSchema,
        response: { 201: GroupSchema, ...errorResponses(409, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => ({
        statusCode: 201,
        body: toGroupDto(await app.groups.insert(tx, request.principal.workspaceId, request.body)),
      })),
  )

  app.get(
    '/subscription-groups',
    {
      config: { scope: 'consent:read' },
      schema: {
        tags,
        summary: 'List subscription groups',
        querystring: Type.Object({ include_archived: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
        response: { 200: Type.Object({ subscription_groups: Type.Array(GroupSchema) }), ...errorResponses() },
      },
    },
    async (request) => ({
      subscription_groups: (await app.groups.list(request.principal.workspaceId, { includeArchived: request.query.include_archived })).map(toGroupDto),
    }),
  )

  app.get(
    '/subscription-groups/:id',
    { config: { scope: 'consent:read' }, schema: { tags, summary: 'Read a subscription group', params: IdParams, response: { 200: GroupSchema, ...errorResponses(404) } } },
    async (request) => toGroupDto(await app.groups.get(request.principal.workspaceId, request.params.id)),
  )

  app.patch(
    '/subscription-groups/:id',
    {
      config: { scope: 'admin' },
      schema: { tags, summary: 'Update a subscription group', params: IdParams, body: PatchGroupSchema, response: { 200: GroupSchema, ...errorResponses(404, 409) } },
    },
    async (request) => {
      const g = await app.groups.update(request.principal.workspaceId, request.params.id, request.body)
      app.checks.forget(request.principal.workspaceId)
      return toGroupDto(g)
    },
  )

  app.post(
    '/subscription-groups/:id/archive',
    { config: { scope: 'admin' }, schema: { tags, summary: 'Archive a subscription group (no delete)', params: IdParams, response: { 200: GroupSchema, ...errorResponses(404) } } },
    async (request) => toGroupDto(await app.groups.archive(request.principal.workspaceId, request.params.id)),
  )
}

export default groups
