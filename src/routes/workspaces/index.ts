/** Tenants, managed only with the root key (docs/architecture.md). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import { CreateApiKeySchema, CreateWorkspaceSchema, CreatedApiKeySchema, WorkspaceSchema } from '../../schemas/admin.js'
import { IdParams, errorResponses } from '../../schemas/common.js'
import { notFound } from '../../errors/domain-error.js'
import { CREATE_KEY_IDEMPOTENCY, createdKey } from '../api-keys/index.js'
import { replyIdempotent } from '../idempotent-reply.js'
import type { WorkspaceRow } from '../../workspaces/workspace-repository.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const toDto = (w: WorkspaceRow) => ({ id: w.id, name: w.name, created_at: new Date(w.created_at).toISOString() })

const workspaces: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/workspaces',
    {
      config: { root: true },
      schema: {
        tags: ['administration'],
        summary: 'Create a workspace (root key only)',
        description: 'Accepts `Idempotency-Key` (scoped to the root key\'s workspace): the same key and body answers the first answer again; another body with it is 422.',
        body: CreateWorkspaceSchema,
        response: { 201: WorkspaceSchema, ...errorResponses(409, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => ({ statusCode: 201, body: toDto(await app.workspaces.insert(tx, request.body.name)) })),
  )

  app.get(
    '/workspaces',
    { config: { root: true }, schema: { tags: ['administration'], summary: 'List workspaces (root key only)', response: { 200: Type.Object({ workspaces: Type.Array(WorkspaceSchema) }), ...errorResponses() } } },
    async () => ({ workspaces: (await app.workspaces.list()).map(toDto) }),
  )

  app.post(
    '/workspaces/:id/api-keys',
    {
      config: { root: true },
      schema: {
        tags: ['administration'],
        summary: 'Create an API key in a workspace (root key only)',
        params: IdParams,
        body: CreateApiKeySchema,
        description: CREATE_KEY_IDEMPOTENCY,
        response: { 201: CreatedApiKeySchema, ...errorResponses(404, 409, 422) },
      },
    },
    async (request, reply) => {
      const id = request.params.id
      if (!UUID.test(id)) throw notFound('workspace')
      return replyIdempotent(app, request, reply, async (tx) => {
        if (!(await app.workspaces.exists(tx, id))) throw notFound('workspace')
        return createdKey(await app.apiKeys.create(id.toLowerCase(), request.body.name, request.body.scopes, { rateLimitMax: request.body.rate_limit_max, tx }))
      })
    },
  )
}

export default workspaces
