/** API keys of the caller's workspace (scope admin). The secret is shown once, at creation. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import { ApiKeySchema, CreateApiKeySchema, CreatedApiKeySchema } from '../../schemas/admin.js'
import { IdParams, errorResponses } from '../../schemas/common.js'
import { notFound } from '../../errors/domain-error.js'
import type { ApiKeyRow } from '../../auth/api-keys.js'
import { replyIdempotent } from '../idempotent-reply.js'

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

export const CREATE_KEY_IDEMPOTENCY =
  'Accepts `Idempotency-Key`: the same key and body answers the first answer again (same key id) and creates nothing; another body with it is 422. ' +
  'The replay leaves out `key`: the secret is shown once and never stored, not even for replays. A caller that lost the first answer revokes the key by its id.'

/**
 * A created key's answer: the secret in the first answer only. Replays answer without it, because
 * keeping it in the idempotency store would keep a usable credential in plain text (in the database
 * and its backups) for the store's lifetime, which is what hashing keys avoids.
 */
export function createdKey(k: ApiKeyRow & { key: string }) {
  const dto = toApiKeyDto(k)
  return { statusCode: 201, body: { ...dto, key: k.key }, replayBody: dto }
}

const apiKeys: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/api-keys',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['administration'],
        summary: 'Create an API key',
        description: CREATE_KEY_IDEMPOTENCY,
        body: CreateApiKeySchema,
        response: { 201: CreatedApiKeySchema, ...errorResponses(409, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) =>
        createdKey(
          await app.apiKeys.create(request.principal.workspaceId, request.body.name, request.body.scopes, {
            rateLimitMax: request.body.rate_limit_max,
            tx,
          }),
        ),
      ),
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
