/** Workspaces, API keys and subscription groups (docs/architecture.md). */
import { Type } from '@fastify/type-provider-typebox'
import { SCOPES } from '../auth/api-keys.js'
import { DateTime, Uuid } from './common.js'

export const ScopeSchema = Type.Union(SCOPES.map((s) => Type.Literal(s)))

export const WorkspaceSchema = Type.Object({ id: Uuid, name: Type.String(), created_at: DateTime })
export const CreateWorkspaceSchema = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false })

export const ApiKeySchema = Type.Object({
  id: Uuid,
  workspace_id: Uuid,
  name: Type.String(),
  prefix: Type.String({ description: 'Non-secret part of the key, shown to tell keys apart' }),
  scopes: Type.Array(Type.String()),
  created_at: DateTime,
  revoked_at: Type.Union([DateTime, Type.Null()]),
  last_used_at: Type.Union([DateTime, Type.Null()]),
  rate_limit_max: Type.Union([Type.Integer(), Type.Null()], { description: 'Requests per rate-limit window for this key; null = the service default' }),
})
export const CreatedApiKeySchema = Type.Intersect([
  ApiKeySchema,
  Type.Object({
    key: Type.Optional(
      Type.String({ description: 'The secret key. Shown once, in the first answer; only its hash is stored (an Idempotency-Key replay leaves it out).' }),
    ),
  }),
])
export const CreateApiKeySchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    scopes: Type.Array(ScopeSchema, { minItems: 1, uniqueItems: true }),
    rate_limit_max: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'Override of RATE_LIMIT_MAX for this key' })),
  },
  { additionalProperties: false },
)

const Channel = Type.Union([Type.Literal('whatsapp'), Type.Literal('sms')])
const Category = Type.Union([Type.Literal('marketing'), Type.Literal('utility'), Type.Literal('authentication')])

export const GroupSchema = Type.Object({
  id: Uuid,
  name: Type.String(),
  channel: Channel,
  category: Category,
  phone_number_id: Type.Union([Type.String(), Type.Null()]),
  requires_opt_in: Type.Boolean(),
  created_at: DateTime,
  updated_at: DateTime,
  archived_at: Type.Union([DateTime, Type.Null()]),
})
export const CreateGroupSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    channel: Channel,
    category: Category,
    phone_number_id: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()])),
    requires_opt_in: Type.Optional(Type.Boolean({ default: true })),
  },
  { additionalProperties: false },
)
/**
 * Built field by field, not as Type.Partial(CreateGroupSchema): the create schema's
 * `requires_opt_in` default (true) would be filled in by Ajv's useDefaults on every PATCH, so a
 * rename silently reset a `requires_opt_in: false` group, and `{}` passed minProperties.
 */
export const PatchGroupSchema = Type.Object(
  {
    name: Type.Optional(CreateGroupSchema.properties.name),
    channel: Type.Optional(Channel),
    category: Type.Optional(Category),
    phone_number_id: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()])),
    requires_opt_in: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1 },
)
