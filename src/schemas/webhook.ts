/** Meta WhatsApp webhook, its inbox, and business numbers (docs/webhook.md). */
import { Type } from '@fastify/type-provider-typebox'
import { DateTime } from './common.js'

export const HandshakeQuery = Type.Object(
  {
    'hub.mode': Type.Optional(Type.String({ maxLength: 64 })),
    'hub.verify_token': Type.Optional(Type.String({ maxLength: 1024 })),
    'hub.challenge': Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: true },
)

export const WebhookAckSchema = Type.Object({
  received: Type.Literal(true),
  inbox_id: Type.String({ description: 'The stored raw payload (webhook inbox row)' }),
  status: Type.String({ description: 'Inbox status after processing in this request: processed, unmapped, deferred, failed or pending' }),
})

/** Same values as INBOX_STATUSES (src/webhook/inbox-repository.ts), spelled out for type inference. */
const InboxStatus = Type.Union([
  Type.Literal('pending'),
  Type.Literal('processed'),
  Type.Literal('unmapped'),
  Type.Literal('deferred'),
  Type.Literal('failed'),
])

export const InboxEntrySchema = Type.Object({
  id: Type.String(),
  received_at: DateTime,
  status: InboxStatus,
  attempts: Type.Integer({ description: 'Times it was processed' }),
  last_error: Type.Union([Type.String(), Type.Null()]),
  processed_at: Type.Union([DateTime, Type.Null()]),
  body_sha256: Type.String({ description: 'sha256 hex of the exact bytes Meta signed (cited in event evidence)' }),
  phone_number_ids: Type.Array(Type.String(), { description: 'The business numbers of the payload that you may see' }),
  payload: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], {
    description: 'The payload, limited to the changes of the numbers you may see; null when it is not valid JSON',
  }),
})

export const InboxListQuery = Type.Object(
  {
    status: Type.Optional(Type.Union([InboxStatus, Type.Literal('all')], { description: 'Default: pending, unmapped, deferred and failed (the kept payloads)' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'next_cursor of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
  },
  { additionalProperties: false },
)

export const InboxListSchema = Type.Object({
  payloads: Type.Array(InboxEntrySchema),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
})

export const InboxIdParams = Type.Object({ id: Type.String({ maxLength: 32 }) }, { additionalProperties: false })

const PhoneNumberId = Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', description: "Meta's business phone number id" })

export const WhatsAppNumberSchema = Type.Object({
  phone_number_id: Type.String(),
  display_phone_number: Type.Union([Type.String(), Type.Null()]),
  created_at: DateTime,
  mapped_by: Type.Union([Type.Literal('operator'), Type.Literal('workspace')], {
    description: "operator: receives the webhooks signed with the operator's app secret; workspace: a claim, receives only those signed with this workspace's own app secret",
  }),
  status: Type.Union([Type.Literal('verified'), Type.Literal('pending')], {
    description: "verified: mapped by the operator, or a payload signed with this workspace's own app secret named it; pending: not yet",
  }),
  verified_at: Type.Union([DateTime, Type.Null()]),
})

export const CreateWhatsAppNumberSchema = Type.Object(
  {
    phone_number_id: PhoneNumberId,
    display_phone_number: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  },
  { additionalProperties: false },
)

export const NumberParams = Type.Object({ phone_number_id: Type.String({ maxLength: 64 }) }, { additionalProperties: false })
