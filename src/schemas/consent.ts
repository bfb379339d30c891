/** Native consent events (`POST /consent/events`). */
import { Type } from '@fastify/type-provider-typebox'
import { METHODS } from '../ledger/types.js'

export const StateSchema = Type.Union([Type.Literal('subscribed'), Type.Literal('unsubscribed')])
export const MethodSchema = Type.Union(METHODS.map((m) => Type.Literal(m)))

export const EvidenceSchema = Type.Object(
  {
    consent_text: Type.Optional(Type.String({ maxLength: 10000 })),
    consent_text_version: Type.Optional(Type.String({ maxLength: 200 })),
    ip: Type.Optional(Type.String({ maxLength: 64 })),
    user_agent: Type.Optional(Type.String({ maxLength: 2000 })),
    page_url: Type.Optional(Type.String({ maxLength: 2000 })),
    document_ref: Type.Optional(Type.String({ maxLength: 2000 })),
    captured_by: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: true, description: 'How consent was captured; further fields are kept as given.' },
)

export const NativeEventSchema = Type.Object(
  {
    external_id: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    phone: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
    bsuid: Type.Optional(Type.String({ minLength: 1, maxLength: 80 })),
    subscription_group_id: Type.String({ minLength: 1, maxLength: 64 }),
    state: Type.String({ description: 'subscribed | unsubscribed' }),
    occurred_at: Type.Optional(Type.String({ description: 'RFC 3339; defaults to receipt time' })),
    method: Type.Optional(Type.String({ description: METHODS.join(' | ') })),
    evidence: Type.Optional(EvidenceSchema),
  },
  { additionalProperties: false },
)

export const ConsentEventsBody = Type.Object(
  { events: Type.Array(NativeEventSchema, { minItems: 1, maxItems: 10000 }) },
  { additionalProperties: false },
)

export const ItemResultSchema = Type.Object({
  index: Type.Integer(),
  status: Type.Union([Type.Literal('applied'), Type.Literal('duplicate'), Type.Literal('rejected')]),
  event_id: Type.Optional(Type.String()),
  contact_id: Type.Optional(Type.String()),
  code: Type.Optional(Type.String()),
  message: Type.Optional(Type.String()),
})

export const ConsentEventsResponse = Type.Object({
  applied: Type.Integer(),
  duplicates: Type.Integer(),
  rejected: Type.Integer(),
  results: Type.Array(ItemResultSchema),
})
