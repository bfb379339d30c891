/** API keys of the caller's workspace (scope admin). The secret is shown once, at creation. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import { ApiKeySchema, CreateApiKeySchema, CreatedApiKeySchema } from '../../schemas/admin.js'
import { IdParams, errorResponses } from '../../schemas/common.js'
import { notFound } from '../../errors/domain-error.js'
import type { ApiKeyRow } from '../../auth/api-keys.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null)

export function toApiKeyDto(k: ApiKeyRow) {
  return {
    id: k.id,
    workspace_id: k.workspace_id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    created_at: new Date(k.created_at).toISOString(),
    revoked_at: iso(k.revoked_at),
    last_used_at: iso(k.last_used_at),
    rate_limit_max: k.rate_limit_max ?? null,
  }
}

const apiKeys: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/api-keys',
    { config: { scope: 'admin' }, schema: { tags: ['administration'], summary: 'Create an API key', body: CreateApiKeySchema, response: { 201: CreatedApiKeySchema, ...errorResponses() } } },
    async (request, reply) => {
      const k = await app.apiKeys.create(request.principal.workspaceId, request.body.name, request.body.scopes, {
        rateLimitMax: request.body.rate_limit_max,
      })
      return reply.code(201).send({ ...toApiKeyDto(k), key: k.key })
    },
  )

  app.get(
    '/api-keys',
    { config: { scope: 'admin' }, schema: { tags: ['administration'], summary: 'List API keys', response: { 200: Type.Object({ api_keys: Type.Array(ApiKeySchema) }), ...errorResponses() } } },
    async (request) => ({ api_keys: (await app.apiKeys.list(request.principal.workspaceId)).map(toApiKeyDto) }),
  )

  app.delete(
    '/api-keys/:id',
    { config: { scope: 'admin' }, schema: { tags: ['administration'], summary: 'Revoke an API key', params: IdParams, response: { 200: ApiKeySchema, ...errorResponses(404) } } },
    async (request) => {
      if (!UUID.test(request.params.id)) throw notFound('API key')
      const k = await app.apiKeys.revoke(request.principal.workspaceId, request.params.id.toLowerCase())
      if (!k) throw notFound('API key')
      return toApiKeyDto(k)
    },
  )
}

export default apiKeys
