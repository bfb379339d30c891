/**
 * Braze-compatible `POST /users/track` (docs/braze.md): contact attributes and subscription-group
 * changes, in ONE ledger append and ONE transaction per request; under load, requests without an
 * Idempotency-Key share the transaction and the append with others of the workspace (group
 * commit, ledger/append-coalescer.ts), each still answered with its own results after the commit.
 *
 * Per attributes object: an `identifyOnly` ledger item resolves (creates, merges, moves) the
 * contact from external_id / phone / bsuid, followed by one consent item per subscription_groups
 * entry (source `users_track`); then the other keys are applied as attributes (`null` removes).
 * Failure granularity:
 * - an invalid or missing identity fails the whole object (nothing of it applies, not counted in
 *   `attributes_processed`);
 * - a bad subscription_groups entry (BAD_SUBSCRIPTION_GROUP_ID, EVIDENCE_REQUIRED, ...) fails only
 *   that entry: the object's attributes and its other entries still apply.
 * `events` and `purchases` are not stored: each item answers UNSUPPORTED. Each object is checked on
 * its own (src/braze/item-check.ts): a malformed object is an item error; only an unusable envelope
 * (arrays, more than BRAZE_MAX_OBJECTS objects) answers 400 and changes nothing (docs/braze.md).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { AttributePatch } from '../../contacts/contact-service.js'
import { identityKey } from '../../braze/known-identities.js'
import type { AppendItem, ItemResult, RawIdentity } from '../../ledger/types.js'
import type { Sql } from '../../db/sql.js'
import { brazeErrorResponses, usersTrackBody, UsersTrackResponse, type BrazeItemError, type TrackAttributes } from '../../schemas/braze.js'
import { brazeType } from '../../braze/errors.js'
import { badRequest } from '../../errors/domain-error.js'
import { checkTrackEntry, checkTrackObject, doubleOptInProblem, unsupportedIdentifier, type ItemProblem } from '../../braze/item-check.js'
import { normalizeIdentity } from '../../contacts/identity.js'
import { replyIdempotent } from '../idempotent-reply.js'
import { appendContext } from '../route-options.js'

/** Keys of an attributes object that are not contact attributes. */
const RESERVED = new Set([
  'external_id',
  'phone',
  'bsuid',
  'subscription_groups',
  '_update_existing_only',
  '_merge_objects',
  'user_alias',
  'braze_id',
  'push_token_import',
])

/** Most subscription_groups entries one object may carry. */
const MAX_ENTRIES = 100

interface ObjectPlan {
  index: number
  identities: RawIdentity[]
  updateExistingOnly: boolean
  /** Index of the identifyOnly item in the append batch. */
  identifyAt: number
  /** Index in the append batch of each applicable subscription_groups entry, with its position in the object. */
  groupAt: { at: number; entry: number }[]
  set: Record<string, unknown>
  remove: string[]
}

function identitiesOf(o: TrackAttributes): RawIdentity[] {
  const out: RawIdentity[] = []
  // external_id first: it names the contact when a phone/bsuid has to move, as recycled numbers do (docs/architecture.md).
  if (o.external_id != null) out.push({ type: 'external_id', value: o.external_id })
  if (o.phone != null) out.push({ type: 'phone', value: o.phone })
  if (o.bsuid != null) out.push({ type: 'bsuid', value: o.bsuid })
  return out
}

/**
 * One attributes object: its item errors (in object order) and, unless its identity is unusable,
 * its plan. A bad subscription_groups entry fails only that entry.
 */
function planObject(raw: unknown, index: number, errors: BrazeItemError[]): Omit<ObjectPlan, 'identifyAt' | 'groupAt'> & { entries: Record<string, unknown>[]; entryIndex: number[] } | null {
  const fail = (p: ItemProblem) => (errors.push({ type: p.type, input_array: 'attributes', index, message: p.message }), null)
  const problem = checkTrackObject(raw)
  if (problem) return fail(problem)
  const o = raw as TrackAttributes
  if (o.user_alias != null) return fail(unsupportedIdentifier('user_alias'))
  if (o.braze_id != null) return fail(unsupportedIdentifier('braze_id'))
  if (o.external_id == null && o.phone == null) {
    if (o.email != null) return fail(unsupportedIdentifier('email'))
    return fail({ type: 'MISSING_IDENTIFIER', message: 'one of external_id or phone is required' })
  }
  const entries: Record<string, unknown>[] = []
  const entryIndex: number[] = []
  const groups = (o as Record<string, unknown>).subscription_groups
  if (groups !== undefined && groups !== null) {
    if (!Array.isArray(groups) || groups.length > MAX_ENTRIES) {
      errors.push({ type: 'BAD_SUBSCRIPTION_GROUPS', input_array: 'attributes', index, message: `subscription_groups must be an array of at most ${MAX_ENTRIES} entries` })
    } else {
      groups.forEach((g: unknown, j) => {
        const p = checkTrackEntry(g) ?? doubleOptInProblem(g as Record<string, unknown>)
        if (p) errors.push({ type: p.type, input_array: 'attributes', index, message: `subscription_groups[${j}]: ${p.message}` })
        else (entries.push(g as Record<string, unknown>), entryIndex.push(j))
      })
    }
  }
  const set: Record<string, unknown> = {}
  const remove: string[] = []
  for (const [k, v] of Object.entries(o)) {
    if (RESERVED.has(k)) continue
    if (v === null) remove.push(k)
    else set[k] = v
  }
  return { index, identities: identitiesOf(o), updateExistingOnly: o._update_existing_only === true, set, remove, entries, entryIndex }
}

/** Which of these objects (with `_update_existing_only`) name a contact that exists: keys `type\0value`. */
const usersTrack: FastifyPluginAsyncTypebox = async (app) => {
  const max = app.config.BRAZE_MAX_OBJECTS
  app.post(
    '/users/track',
    {
      config: { scope: 'consent:write', errorShape: 'braze', inputGuard: 'envelope' },
      schema: {
        tags: ['braze'],
        summary: 'Braze /users/track: attributes and subscription-group changes',
        description:
          `At most ${max} objects per array. Accepts \`Idempotency-Key\`. Each attributes object needs external_id or phone (bsuid optional); ` +
          'subscription_groups entries take the extensions occurred_at, method and evidence. Item errors appear in errors[] and the rest is processed: ' +
          'an identity error skips its object, a subscription_groups error skips only that entry. events/purchases are not stored (UNSUPPORTED).',
        body: usersTrackBody(max),
        response: { 201: UsersTrackResponse, ...brazeErrorResponses(409, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      if (request.body.attributes === undefined && request.body.events === undefined && request.body.purchases === undefined) {
        throw badRequest('empty_request', 'The request must contain attributes, events or purchases.')
      }
      const body = request.body
      const workspaceId = request.principal.workspaceId
      /** Errors known before the append (shape of each object). */
      const early: BrazeItemError[] = []
      const items: AppendItem[] = []
      const plans: ObjectPlan[] = []

      const drafts = ((body.attributes ?? []) as unknown[]).map((raw, index) => planObject(raw, index, early))
      // `_update_existing_only`: an object naming no known contact creates nobody (Braze's "update only" mode).
      const updateOnly = drafts.filter((d) => d !== null && d.updateExistingOnly)
      const known = updateOnly.length > 0 ? await app.braze.existingIdentities(workspaceId, updateOnly.flatMap((d) => d!.identities)) : new Set<string>()
      for (const d of drafts) {
        if (d === null) continue
        if (d.updateExistingOnly && !d.identities.some((i) => known.has(identityKey(i.type, normalizeIdentity(i.type, i.value))))) {
          early.push({
            type: 'USER_NOT_FOUND',
            input_array: 'attributes',
            index: d.index,
            message: '_update_existing_only: no contact has these identifiers; nothing was created',
          })
          continue
        }
        const plan: ObjectPlan = { index: d.index, identities: d.identities, updateExistingOnly: d.updateExistingOnly, identifyAt: items.length, groupAt: [], set: d.set, remove: d.remove }
        items.push({ identities: d.identities, identifyOnly: true, source: 'users_track' })
        d.entries.forEach((g, k) => {
          plan.groupAt.push({ at: items.length, entry: d.entryIndex[k]! })
          items.push({
            identities: d.identities,
            subscriptionGroupId: g.subscription_group_id as string,
            state: g.subscription_state as string,
            occurredAt: g.occurred_at as string | undefined,
            method: g.method as string | undefined,
            evidence: g.evidence as Record<string, unknown> | undefined,
            source: 'users_track',
          })
        })
        plans.push(plan)
      }

      const ctx = appendContext(request)
      // In the append's transaction, with its results: attributes, then the answer. Pure apart from
      // `tx` (a grouped transaction that fails runs it again alone).
      const finish = async (tx: Sql, results: ItemResult[]) => {
        const errors = [...early]
        let processed = 0
        const patches: AttributePatch[] = []
        for (const p of plans) {
          const who = results[p.identifyAt]!
          if (who.status === 'rejected') {
            errors.push({ type: brazeType(who), input_array: 'attributes', index: p.index, message: who.message })
            continue
          }
          processed++
          if (who.status === 'resolved') patches.push({ contactId: who.contact_id, set: p.set, remove: p.remove })
          for (const { at, entry } of p.groupAt) {
            const r = results[at]!
            if (r.status !== 'rejected') continue
            errors.push({ type: brazeType(r), input_array: 'attributes', index: p.index, message: `subscription_groups[${entry}]: ${r.message}` })
          }
        }
        await app.contacts.applyAttributePatches(tx, workspaceId, patches)

        // Attribute errors in object order (a stable sort: an object's own errors keep their order).
        errors.sort((a, b) => a.index - b.index)
        for (const what of ['events', 'purchases'] as const) {
          ;(body[what] ?? []).forEach((_item, index) =>
            errors.push({ type: 'UNSUPPORTED', input_array: what, index, message: `${what} are not stored by this service` }),
          )
        }
        return {
          statusCode: 201 as const,
          body: { message: 'success', attributes_processed: processed, ...(errors.length > 0 ? { errors } : {}) },
        }
      }

      if (ctx.idempotencyKey === undefined) {
        // Without a key: group commit with the workspace's other requests under load.
        const out = await app.appendGroups.submit({ ctx, items, finish })
        return reply.code(out.statusCode).send(out.body)
      }
      return replyIdempotent(app, request, reply, (tx) => app.appendGroups.runIn(tx, { ctx, items, finish }))
    },
  )
}

export default usersTrack
