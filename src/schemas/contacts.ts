/** Contacts administration (docs/architecture.md): list, read, patch, and the admin consent toggle. */
import { Type, type Static } from '@fastify/type-provider-typebox'
import { DateTime, Uuid } from './common.js'
import { EvidenceSchema, MethodSchema, StateSchema } from './consent.js'

export const IdentityTypeSchema = Type.Union([Type.Literal('external_id'), Type.Literal('phone'), Type.Literal('bsuid')])
export const IdentitySchema = Type.Object({ type: IdentityTypeSchema, value: Type.String() })

/** A group's state for a contact; `unknown` means nothing was ever recorded (no projection row). */
export const GroupStateValue = Type.Union([Type.Literal('subscribed'), Type.Literal('unsubscribed'), Type.Literal('unknown')])

/** Free-form attributes: any JSON values under non-empty keys. */
export const AttributesSchema = Type.Record(Type.String(), Type.Unknown(), {
  description: 'Free-form JSON attributes',
})

/** A tag: 1 to 100 characters, no control characters. */
export const TagSchema = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]+$' })

// ---------------------------------------------------------------------------------------------
// GET /contacts

/** `attribute[<key>]=<value>` filters arrive as keys of the query object (Fastify's querystring parser does not nest). */
export const ATTRIBUTE_FILTER = /^attribute\[(.{1,256})\]$/
export const MAX_ATTRIBUTE_FILTERS = 20
/** PostgreSQL text cannot hold NUL: refuse it in the schema instead of failing in the driver. */
const NO_NUL = '^[^\\u0000]*$'

export const ContactListQuery = Type.Object(
  {
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        pattern: NO_NUL,
        description:
          'Case-insensitive substring (hence also prefix) of any identity value: external_id, phone (E.164) or bsuid. ' +
          'A phone typed with separators (`+1 650-555`) also matches without them.',
      }),
    ),
    tag: Type.Optional(
      Type.Array(TagSchema, { maxItems: 20, description: 'Contacts having this tag; repeat the parameter to require several (AND).' }),
    ),
    subscription_group_id: Type.Optional(
      Type.String({
        format: 'uuid',
        description:
          'Adds `consent` (the state in this group) to every listed contact. Alone it does not filter; with `state` it does. ' +
          'An unknown group (or another workspace\'s) answers 404.',
      }),
    ),
    state: Type.Optional(
      Type.Union([Type.Literal('subscribed'), Type.Literal('unsubscribed'), Type.Literal('unknown')], {
        description: 'Requires subscription_group_id. `unknown`: no consent ever recorded for the group.',
      }),
    ),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Opaque `next_cursor` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'Page size (default 50, at most 500)' })),
  },
  {
    additionalProperties: false,
    // `attribute[plan]=gold`: contacts whose attributes->>'plan' = 'gold' (compared as text).
    patternProperties: { [ATTRIBUTE_FILTER.source]: Type.String({ maxLength: 1000, pattern: NO_NUL }) },
    description: 'Filters combine with AND. `attribute[<key>]=<value>` (repeatable with different keys, at most 20) keeps contacts whose attribute, read as text, equals the value.',
  },
)
export type ContactListQueryT = Static<typeof ContactListQuery>

const ListConsentSchema = Type.Object(
  {
    subscription_group_id: Uuid,
    state: GroupStateValue,
    occurred_at: Type.Union([DateTime, Type.Null()]),
    event_id: Type.Union([Uuid, Type.Null()]),
  },
  { description: 'State in the group named by `subscription_group_id` (present only when that parameter is given)' },
)

export const ContactSummarySchema = Type.Object({
  id: Uuid,
  identities: Type.Array(IdentitySchema),
  attributes: AttributesSchema,
  tags: Type.Array(Type.String()),
  created_at: DateTime,
  updated_at: DateTime,
  consent: Type.Optional(ListConsentSchema),
})

export const ContactListResponse = Type.Object({
  contacts: Type.Array(ContactSummarySchema),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
})

// ---------------------------------------------------------------------------------------------
// GET /contacts/{id}

export const ContactGroupStateSchema = Type.Object({
  subscription_group_id: Uuid,
  name: Type.String(),
  channel: Type.String(),
  category: Type.String(),
  phone_number_id: Type.Union([Type.String(), Type.Null()]),
  state: GroupStateValue,
  occurred_at: Type.Union([DateTime, Type.Null()], { description: 'When the winning event happened; null when unknown' }),
  event_id: Type.Union([Uuid, Type.Null()], { description: 'The winning ledger event; null when unknown' }),
  source: Type.Union([Type.String(), Type.Null()]),
  platform_stopped: Type.Boolean({ description: "Meta's own marketing stop applies to this group (WhatsApp marketing only)" }),
})

export const PlatformStopSchema = Type.Object({
  phone_number_id: Type.String(),
  stopped: Type.Boolean(),
  occurred_at: DateTime,
})

export const ContactDetailSchema = Type.Object({
  id: Uuid,
  identities: Type.Array(IdentitySchema),
  attributes: AttributesSchema,
  tags: Type.Array(Type.String()),
  created_at: DateTime,
  updated_at: DateTime,
  subscription_groups: Type.Array(ContactGroupStateSchema, { description: 'Every non-archived group of the workspace' }),
  platform_stops: Type.Array(PlatformStopSchema),
})
export type ContactDetail = Static<typeof ContactDetailSchema>

export const ContactIdParams = Type.Object({ id: Type.String({ description: 'Contact id (uuid)' }) }, { additionalProperties: false })

// ---------------------------------------------------------------------------------------------
// PATCH /contacts/{id}

export const PatchContactSchema = Type.Object(
  {
    attributes: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        minProperties: 1,
        maxProperties: 200,
        propertyNames: { minLength: 1, maxLength: 256 },
        description: 'Keys to set (any JSON value); a `null` value removes the key. Keys not named are kept.',
      }),
    ),
    tags: Type.Optional(
      Type.Object(
        {
          add: Type.Optional(Type.Array(TagSchema, { maxItems: 200 })),
          remove: Type.Optional(Type.Array(TagSchema, { maxItems: 200 })),
        },
        { additionalProperties: false, minProperties: 1, description: 'Tags to add and to remove; a tag may not be in both' },
      ),
    ),
  },
  { additionalProperties: false, minProperties: 1 },
)

// ---------------------------------------------------------------------------------------------
// POST /contacts/{id}/consent

export const ContactConsentBody = Type.Object(
  {
    subscription_group_id: Type.String({ minLength: 1, maxLength: 64, description: 'uuid of a non-archived group' }),
    state: StateSchema,
    occurred_at: Type.Optional(Type.String({ format: 'date-time', description: 'RFC 3339; defaults to receipt time' })),
    method: Type.Optional(MethodSchema),
    evidence: Type.Optional(EvidenceSchema),
  },
  { additionalProperties: false },
)

export const ContactConsentResponse = Type.Object({
  event_id: Uuid,
  contact_id: Uuid,
  subscription_group_id: Uuid,
  state: StateSchema,
  changed: Type.Boolean({ description: 'The event changed the contact\'s state in the group' }),
})
