/**
 * Braze-compatible request and response shapes (docs/braze.md): same paths and field names as Braze's
 * REST API, additive extensions only. Attribute objects of `/users/track` take arbitrary keys (they
 * become contact attributes); every other request shape is strict (unknown keys answer 400, docs/input-rules.md).
 * Errors answer Braze's `{"message": ...}` (the routes set `config.errorShape = 'braze'`).
 */
import { Type, type Static } from '@fastify/type-provider-typebox'
import { EvidenceSchema, StateSchema } from './consent.js'
import { METHODS } from '../ledger/types.js'
import { validatedAs } from '../plugins/validation.js'

/** Braze's per-batch identifier limit of the subscription routes. */
export const BRAZE_MAX_IDENTIFIERS = 50
/** Groups per `/v2/subscription/status/set` request (Braze documents none; 50 x 50 identifiers at most). */
export const BRAZE_MAX_V2_GROUPS = 50

/**
 * `string | null` (null = not given). OpenAPI 3.0's `nullable`, which Ajv also honours, so its type
 * coercion never turns null into "".
 */
const NullableString = (description: string) => Type.Unsafe<string | null>({ type: 'string', nullable: true, description })

/** A non-fatal error about one item; the rest of the request was processed. */
export const BrazeItemErrorSchema = Type.Object({
  type: Type.String({ description: 'UPPER_SNAKE code: BAD_SUBSCRIPTION_GROUP_ID, BAD_SUBSCRIPTION_GROUP_STATE, INVALID_PHONE, EVIDENCE_REQUIRED, ...' }),
  input_array: Type.String({ description: 'The request array the item came from (attributes, events, external_id, phone, subscription_groups, ...)' }),
  index: Type.Integer({ description: 'Zero-based index of the item in input_array' }),
  message: Type.String(),
})
export type BrazeItemError = Static<typeof BrazeItemErrorSchema>

/** Braze-shaped fatal error: nothing was changed. */
export const BrazeErrorSchema = Type.Object(
  {
    message: Type.String(),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          pointer: Type.Optional(Type.String({ description: 'JSON pointer into the request (/body/..., /querystring/...)' })),
          code: Type.Optional(Type.String()),
          type: Type.Optional(Type.String()),
          input_array: Type.Optional(Type.String()),
          index: Type.Optional(Type.Integer()),
          message: Type.String(),
        }),
      ),
    ),
  },
  { description: 'Braze-shaped error: {"message": ...}, with details in errors[] when there are any' },
)

/** Error responses of the Braze routes (401 unknown key, 403 missing scope, 429 rate limit, ...). */
export function brazeErrorResponses(...extra: number[]) {
  const out: Record<number, typeof BrazeErrorSchema> = {}
  for (const c of [400, 401, 403, 429, 500, ...extra].sort()) out[c] = BrazeErrorSchema
  return out
}

/** Our extension fields, on each consent change. */
const extensions = {
  occurred_at: Type.Optional(Type.String({ maxLength: 64, description: 'Extension: when the person acted (RFC 3339); defaults to receipt time' })),
  method: Type.Optional(Type.String({ maxLength: 32, description: `Extension: how consent was captured: ${METHODS.join(' | ')}` })),
  evidence: Type.Optional(EvidenceSchema),
}

/** Braze's documented flag; honoured by recording nothing (docs/braze.md). */
const doubleOptIn = {
  use_double_opt_in_logic: Type.Optional(
    Type.Boolean({
      description:
        'Braze: send the person a confirmation prompt before they count as subscribed. This service sends no prompt, so true with "subscribed" records nothing ' +
        'and answers DOUBLE_OPT_IN_NOT_SUPPORTED (record the opt-in once the person confirms); false, or with "unsubscribed", changes nothing.',
    }),
  ),
}

/** Braze's legacy body key (the key now goes in the Authorization header): accepted and ignored. */
const legacyApiKey = {
  api_key: Type.Optional(Type.String({ maxLength: 512, description: "Braze's legacy body key: ignored; authenticate with the Authorization header" })),
}

// ---------------------------------------------------------------------------------- /users/track

export const TrackSubscriptionGroupSchema = Type.Object(
  {
    subscription_group_id: Type.String({ maxLength: 64 }),
    subscription_state: Type.String({ maxLength: 32, description: 'subscribed | unsubscribed (anything else: BAD_SUBSCRIPTION_GROUP_STATE)' }),
    ...doubleOptIn,
    ...extensions,
  },
  { additionalProperties: false },
)

/** The keys of an attributes object that are not contact attributes (checked per object). */
export const TrackAttributesFields = {
  external_id: Type.Optional(NullableString('Your user id (one of external_id or phone is required)')),
  phone: Type.Optional(NullableString('E.164 phone; with external_id, both identities are linked (merge/move rules)')),
  bsuid: Type.Optional(NullableString("Meta's business-scoped user id (optional, alongside external_id or phone)")),
  email: Type.Optional(
    NullableString('Beside external_id or phone: a profile field, stored as an attribute. Alone: answers UNSUPPORTED_IDENTIFIER (email identities are not resolved yet)'),
  ),
  user_alias: Type.Optional(
    Type.Object(
      { alias_name: Type.String(), alias_label: Type.String() },
      { description: 'Braze user alias: answers UNSUPPORTED_IDENTIFIER (aliases are not resolved yet)' },
    ),
  ),
  braze_id: Type.Optional(NullableString('Braze user id: answers UNSUPPORTED_IDENTIFIER (Braze ids are not resolved yet)')),
  _update_existing_only: Type.Optional(
    Type.Boolean({ description: 'true: only an existing contact is updated; an object naming nobody known answers USER_NOT_FOUND and creates nothing' }),
  ),
  push_token_import: Type.Optional(Type.Boolean({ description: 'Braze push-token flag: ignored (no push tokens here)' })),
}

export const TrackAttributesSchema = Type.Object(
  {
    ...TrackAttributesFields,
    subscription_groups: Type.Optional(Type.Array(TrackSubscriptionGroupSchema, { maxItems: 100 })),
  },
  {
    additionalProperties: true,
    description:
      'Every other key is a contact attribute (any JSON value; null removes it). Braze operators ($add, inc, ...) are not interpreted: the value is stored as given. ' +
      'Each object is checked on its own: a malformed object or subscription_groups entry is an item error in errors[], the rest of the request is processed.',
  },
)
export type TrackAttributes = Static<typeof TrackAttributesSchema> & Record<string, unknown>

const NotStored = (what: string, max: number) =>
  Type.Optional(
    Type.Array(Type.Object({}, { additionalProperties: true }), {
      maxItems: max,
      description: `${what} are not stored: each item answers an UNSUPPORTED error in errors[]`,
    }),
  )

/** A batch array as the envelope check sees it: any items (each is checked on its own). */
const AnyItems = (max: number) => Type.Optional(Type.Array(Type.Unknown(), { maxItems: max }))

/**
 * The body of `/users/track`; `max` = BRAZE_MAX_OBJECTS (75, Braze's limit) objects per array.
 * Documented in full; validated as its envelope only (arrays and their length), each object by the route.
 */
export function usersTrackBody(max: number) {
  return validatedAs(
    Type.Object(
      {
        attributes: Type.Optional(Type.Array(TrackAttributesSchema, { maxItems: max, description: `At most ${max} objects` })),
        events: NotStored('Events', max),
        purchases: NotStored('Purchases', max),
        ...legacyApiKey,
      },
      { additionalProperties: false },
    ),
    Type.Object(
      { attributes: AnyItems(max), events: AnyItems(max), purchases: AnyItems(max), ...legacyApiKey },
      { additionalProperties: false },
    ),
  )
}

export const UsersTrackResponse = Type.Object({
  message: Type.String({ description: '"success"' }),
  attributes_processed: Type.Integer({ description: 'Attribute objects processed (identity valid); their item errors appear in errors[]' }),
  errors: Type.Optional(Type.Array(BrazeItemErrorSchema)),
})

// ------------------------------------------------------------------------ subscription status set

const IdList = (what: string) => Type.Array(Type.String({ maxLength: 512 }), { maxItems: BRAZE_MAX_IDENTIFIERS, description: what })

const EmailList = Type.Optional(
  Type.Union([Type.String({ maxLength: 512 }), IdList('Email addresses')], {
    description: 'Email addresses: each answers an UNSUPPORTED_IDENTIFIER item error (email identities are not resolved yet); the other identifiers apply',
  }),
)

export const StatusSetV1Body = Type.Object(
  {
    subscription_group_id: Type.String({ maxLength: 64 }),
    subscription_state: StateSchema,
    external_id: Type.Optional(Type.Union([Type.String({ maxLength: 512 }), IdList('External ids')])),
    phone: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), IdList('E.164 phones')])),
    email: EmailList,
    ...doubleOptIn,
    ...legacyApiKey,
    ...extensions,
  },
  {
    additionalProperties: false,
    description: `external_id and/or phone, at most ${BRAZE_MAX_IDENTIFIERS} identifiers in all. Each identifier is its own change (they are not linked to each other).`,
  },
)

export const StatusSetV2Item = Type.Object(
  {
    subscription_group_id: Type.String({ maxLength: 64 }),
    subscription_state: Type.String({ maxLength: 32, description: 'subscribed | unsubscribed (anything else: BAD_SUBSCRIPTION_GROUP_STATE)' }),
    external_ids: Type.Optional(IdList('External ids')),
    phones: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), IdList('E.164 phones')])),
    emails: EmailList,
    ...doubleOptIn,
    ...extensions,
  },
  {
    additionalProperties: false,
    description:
      `external_ids and/or phones, at most ${BRAZE_MAX_IDENTIFIERS} identifiers per item. Each item is checked on its own: a malformed item ` +
      'is an item error (input_array "subscription_groups", its index) and the other items apply.',
  },
)

/** Documented in full; validated as its envelope only, each item by the route. */
export const StatusSetV2Body = validatedAs(
  Type.Object(
    { subscription_groups: Type.Array(StatusSetV2Item, { minItems: 1, maxItems: BRAZE_MAX_V2_GROUPS }) },
    { additionalProperties: false },
  ),
  Type.Object(
    { subscription_groups: Type.Array(Type.Unknown(), { minItems: 1, maxItems: BRAZE_MAX_V2_GROUPS }) },
    { additionalProperties: false },
  ),
)

export const StatusSetResponse = Type.Object({
  message: Type.String({ description: '"success"' }),
  errors: Type.Optional(Type.Array(BrazeItemErrorSchema)),
})

// ------------------------------------------------------------------------ subscription status get

const QueryIds = (what: string) =>
  Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 512 }), { maxItems: BRAZE_MAX_IDENTIFIERS, description: what }))

const queryEmails = {
  email: QueryIds('Repeatable; each answers an UNSUPPORTED_IDENTIFIER item error (email identities are not resolved yet)'),
  'email[]': QueryIds("Braze's bracket spelling of email"),
}

export const StatusGetQuery = Type.Object(
  {
    subscription_group_id: Type.String({ minLength: 1, maxLength: 64 }),
    external_id: QueryIds('Repeatable'),
    phone: QueryIds('Repeatable'),
    'external_id[]': QueryIds("Braze's bracket spelling of external_id"),
    'phone[]': QueryIds("Braze's bracket spelling of phone"),
    ...queryEmails,
  },
  { additionalProperties: false, description: `At most ${BRAZE_MAX_IDENTIFIERS} identifiers in all` },
)

export const BrazeStatusSchema = Type.Union([Type.Literal('Subscribed'), Type.Literal('Unsubscribed'), Type.Literal('Unknown')])
export type BrazeStatus = Static<typeof BrazeStatusSchema>

export const StatusGetResponse = Type.Object({
  status: Type.Record(Type.String(), BrazeStatusSchema, { description: 'Identifier as given → state; Unknown for a never-seen (or invalid) identifier' }),
  message: Type.String(),
  errors: Type.Optional(Type.Array(BrazeItemErrorSchema)),
})

export const UserStatusQuery = Type.Object(
  {
    external_id: QueryIds('Repeatable'),
    phone: QueryIds('Repeatable'),
    'external_id[]': QueryIds("Braze's bracket spelling of external_id"),
    'phone[]': QueryIds("Braze's bracket spelling of phone"),
    ...queryEmails,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 100, description: 'Groups per page' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0, description: 'Groups to skip' })),
  },
  { additionalProperties: false, description: `At most ${BRAZE_MAX_IDENTIFIERS} identifiers in all` },
)

export const UserStatusResponse = Type.Object({
  users: Type.Array(
    Type.Object({
      external_id: Type.Union([Type.String(), Type.Null()]),
      phone: Type.Union([Type.String(), Type.Null()]),
      subscription_groups: Type.Array(
        Type.Object({
          id: Type.String(),
          name: Type.String(),
          channel: Type.String({ description: 'whatsapp | sms' }),
          status: BrazeStatusSchema,
        }),
      ),
    }),
  ),
  total_count: Type.Integer({ description: 'Number of (non-archived) subscription groups, for paging with limit/offset' }),
  message: Type.String(),
  errors: Type.Optional(Type.Array(BrazeItemErrorSchema)),
})
