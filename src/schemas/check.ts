/** Pre-send check (`POST|GET /consent/check`, docs/architecture.md). */
import { Type } from '@fastify/type-provider-typebox'

const Ids = (what: string) => Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { maxItems: 10000, description: what }))

export const CheckBody = Type.Object(
  {
    subscription_group_id: Type.Optional(Type.String({ maxLength: 64 })),
    channel: Type.Optional(Type.Union([Type.Literal('whatsapp'), Type.Literal('sms')])),
    category: Type.Optional(Type.Union([Type.Literal('marketing'), Type.Literal('utility'), Type.Literal('authentication')])),
    phone_number_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    phones: Ids('E.164 phones (or WhatsApp wa_id digits)'),
    external_ids: Ids('Your user ids'),
    bsuids: Ids("Meta's business-scoped user ids"),
  },
  {
    additionalProperties: false,
    description:
      'Either subscription_group_id, or channel + category (+ phone_number_id). Up to 10,000 identifiers in all; results come back phones first, then external_ids, then bsuids, each in input order.',
  },
)

export const CheckResultSchema = Type.Object(
  {
    identifier: Type.String(),
    identifier_type: Type.Union([Type.Literal('phone'), Type.Literal('external_id'), Type.Literal('bsuid')]),
    allowed: Type.Boolean(),
    state: Type.Union([Type.Literal('subscribed'), Type.Literal('unsubscribed'), Type.Literal('unknown')]),
    reason: Type.Union([
      Type.Literal('subscribed'),
      Type.Literal('not_opted_in'),
      Type.Literal('opted_out'),
      Type.Literal('platform_stopped'),
      Type.Literal('opt_in_not_required'),
    ]),
    subscription_group_id: Type.String(),
    occurred_at: Type.Union([Type.String(), Type.Null()]),
    event_id: Type.Union([Type.String(), Type.Null()]),
    error: Type.Optional(Type.Literal('invalid_identifier')),
  },
  { $id: 'CheckResult' },
)

export const CheckResponse = Type.Object({ results: Type.Array(Type.Unsafe<import('@fastify/type-provider-typebox').Static<typeof CheckResultSchema>>(Type.Ref('CheckResult'))) })

export const CheckQuery = Type.Object(
  {
    subscription_group_id: Type.Optional(Type.String({ maxLength: 64 })),
    channel: Type.Optional(Type.Union([Type.Literal('whatsapp'), Type.Literal('sms')])),
    category: Type.Optional(Type.Union([Type.Literal('marketing'), Type.Literal('utility'), Type.Literal('authentication')])),
    phone_number_id: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    phone: Type.Optional(Type.String({ minLength: 1, maxLength: 40 })),
    external_id: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    bsuid: Type.Optional(Type.String({ minLength: 1, maxLength: 80 })),
  },
  { additionalProperties: false },
)
