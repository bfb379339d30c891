/** Tenants, managed only with the root key (DESIGN §3.3). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import { CreateApiKeySchema, CreateWorkspaceSchema, CreatedApiKeySchema, WorkspaceSchema } from '../../schemas/admin.js'
import { IdParams, errorResponses } from '../../schemas/common.js'
import { notFound } from '../../errors/domain-error.js'
import { CREATE_KEY_IDEMPOTENCY, createdKey } from '../api-keys/index.js'
import { replyIdempotent } from '../idempotent-reply.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const toDto = (w: { id: string; name: string; created_at: Date }) => ({ id: w.id, name: w.name, created_at: new Date(w.created_at).toISOString() })

const workspaces: FastifyPluginAsyncTypebox = async (app) => {
  const { sql } = app.database

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
      replyIdempotent(app, request, reply, async (tx) => {
        const [w] = await tx.query<{ id: string; name: string; created_at: Date }>(
          `INSERT INTO workspaces (name) VALUES ($1) RETURNING id, name, created_at`,
          [request.body.name],
        )
        await tx.query(`INSERT INTO workspace_settings (workspace_id) VALUES ($1)`, [w!.id])
        return { statusCode: 201, body: toDto(w!) }
      }),
  )

  app.get(
    '/workspaces',
    { config: { root: true }, schema: { tags: ['administration'], summary: 'List workspaces (root key only)', response: { 200: Type.Object({ workspaces: Type.Array(WorkspaceSchema) }), ...errorResponses() } } },
    async () => {
      const rows = await sql.query<{ id: string; name: string; created_at: Date }>(`SELECT id, name, created_at FROM workspaces ORDER BY created_at, id`)
      return { workspaces: rows.map(toDto) }
    },
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
        const [w] = await tx.query(`SELECT 1 FROM workspaces WHERE id = $1`, [id])
        if (!w) throw notFound('workspace')
        return createdKey(await app.apiKeys.create(id.toLowerCase(), request.body.name, request.body.scopes, { rateLimitMax: request.body.rate_limit_max, tx }))
      })
    },
  )
}

export default workspaces
