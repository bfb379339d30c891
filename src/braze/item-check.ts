/**
 * Per-object checks of the Braze batch routes. Their route schemas validate only the envelope
 * (arrays and their length), so that one malformed object answers a Braze item error while the rest
 * of the batch is written (docs/braze.md). Each object, subscription_groups entry or v2 item is
 * checked here against the same documented TypeBox schema the OpenAPI document shows, and the first
 * problem becomes `{type, message}` with Braze's error types where Braze has one.
 */
import { Type } from '@fastify/type-provider-typebox'
import type { ErrorObject, ValidateFunction } from 'ajv'
import { makeAjv } from '../plugins/validation.js'
import { findUnstorable } from '../input/storable.js'
import { StatusSetV2Item, TrackAttributesFields, TrackSubscriptionGroupSchema } from '../schemas/braze.js'

export interface ItemProblem {
  type: string
  message: string
}

const ajv = makeAjv({ coerceTypes: false, allErrors: false })

/** Error type by the top-level field the problem is in. */
const TYPE_BY_FIELD: Record<string, string> = {
  subscription_group_id: 'BAD_SUBSCRIPTION_GROUP_ID',
  subscription_state: 'BAD_SUBSCRIPTION_GROUP_STATE',
  occurred_at: 'INVALID_OCCURRED_AT',
  method: 'INVALID_METHOD',
  evidence: 'INVALID_EVIDENCE',
  external_id: 'INVALID_EXTERNAL_ID',
  external_ids: 'INVALID_EXTERNAL_ID',
  phone: 'INVALID_PHONE',
  phones: 'INVALID_PHONE',
  bsuid: 'INVALID_BSUID',
}

function problemOf(errors: ErrorObject[] | null | undefined, notAnObject: string): ItemProblem {
  const e = errors?.[0]
  if (!e) return { type: notAnObject, message: 'invalid' }
  if (e.instancePath === '' && e.keyword === 'type') return { type: notAnObject, message: 'must be a JSON object' }
  if (e.keyword === 'additionalProperties') {
    const extra = String((e.params as { additionalProperty?: string }).additionalProperty)
    return { type: 'UNKNOWN_FIELD', message: `unknown field ${JSON.stringify(extra)}` }
  }
  if (e.keyword === 'required') {
    const missing = String((e.params as { missingProperty?: string }).missingProperty)
    return { type: TYPE_BY_FIELD[missing] ?? 'INVALID_FIELD', message: `${missing} is required` }
  }
  const path = e.instancePath.slice(1).split('/')
  const field = path[0] ?? ''
  if (e.keyword === 'maxItems' && path.length === 1 && ['external_ids', 'phones', 'emails'].includes(field)) {
    return { type: 'TOO_MANY_IDENTIFIERS', message: `${field} ${e.message ?? 'has too many items'}` }
  }
  return { type: TYPE_BY_FIELD[field] ?? 'INVALID_FIELD', message: `${path.join('.')} ${e.message ?? 'is invalid'}` }
}

/**
 * Fields not looked at here: identifiers (the ledger refuses an unstorable one per identifier, with
 * its own type) and a /users/track object's subscription_groups (each entry is checked alone).
 */
const NOT_TEXT_CHECKED = new Set(['external_id', 'external_ids', 'phone', 'phones', 'bsuid', 'subscription_groups'])

/**
 * Text that cannot be stored exactly (NUL, unpaired surrogate) in an attribute, evidence or other
 * field of the item (docs/input-rules.md): the item is refused, never repaired.
 */
function unstorableProblem(value: unknown): ItemProblem | null {
  if (value === null || typeof value !== 'object') return null
  for (const [field, v] of Object.entries(value)) {
    if (NOT_TEXT_CHECKED.has(field)) continue
    const found = findUnstorable({ [field]: v }, '', Infinity, 1)[0]
    if (found) return { type: TYPE_BY_FIELD[field] ?? 'INVALID_TEXT', message: `${found.pointer.slice(1).replaceAll('/', '.')} ${found.message}` }
  }
  return null
}

function checker(schema: object, notAnObject: string) {
  const validate: ValidateFunction = ajv.compile(schema)
  return (value: unknown): ItemProblem | null => (validate(value) ? unstorableProblem(value) : problemOf(validate.errors, notAnObject))
}

/** A `/users/track` subscription_groups entry. */
export const checkTrackEntry = checker(TrackSubscriptionGroupSchema, 'INVALID_SUBSCRIPTION_GROUP')

/** The identity and flag fields of a `/users/track` attributes object (subscription_groups apart). */
export const checkTrackObject = checker(Type.Object(TrackAttributesFields, { additionalProperties: true }), 'INVALID_ATTRIBUTES_OBJECT')

/** A `/v2/subscription/status/set` subscription_groups item. */
export const checkV2Item = checker(StatusSetV2Item, 'INVALID_SUBSCRIPTION_GROUP')

/** Braze's double opt-in asks for a confirmation this service does not send: nothing may be recorded. */
export function doubleOptInProblem(entry: { subscription_state?: unknown; use_double_opt_in_logic?: unknown }): ItemProblem | null {
  if (entry.use_double_opt_in_logic !== true || entry.subscription_state !== 'subscribed') return null
  return {
    type: 'DOUBLE_OPT_IN_NOT_SUPPORTED',
    message:
      'use_double_opt_in_logic: this service sends no confirmation prompt, so nothing was recorded; record the opt-in once the person has confirmed',
  }
}

export const unsupportedIdentifier = (what: string): ItemProblem => ({
  type: 'UNSUPPORTED_IDENTIFIER',
  message: `${what} is not supported as an identifier yet; give external_id or phone`,
})
