/**
 * Braze-compatible `POST /users/track` (DESIGN §3.1): contact attributes and subscription-group
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
 * `events` and `purchases` are not stored: each item answers UNSUPPORTED. Shape errors (including
 * more than BRAZE_MAX_OBJECTS objects in an array) answer 400 and change nothing.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { applyAttributePatches, type AttributePatch } from '../../contacts/contact-service.js'
import type { AppendItem, ItemResult, RawIdentity } from '../../ledger/types.js'
import type { Sql } from '../../db/sql.js'
import { brazeErrorResponses, usersTrackBody, UsersTrackResponse, type BrazeItemError, type TrackAttributes } from '../../schemas/braze.js'
import { brazeType } from '../../braze/errors.js'
import { badRequest } from '../../errors/domain-error.js'
import { replyIdempotent } from '../idempotent-reply.js'

/** Keys of an attributes object that are not contact attributes. */
const RESERVED = new Set(['external_id', 'phone', 'bsuid', 'subscription_groups', '_update_existing_only', '_merge_objects'])

interface ObjectPlan {
  index: number
  /** Index of the identifyOnly item in the append batch. */
  identifyAt: number
  /** Index in the append batch of each subscription_groups entry. */
  groupAt: number[]
  set: Record<string, unknown>
  remove: string[]
}

function identitiesOf(o: TrackAttributes): RawIdentity[] {
  const out: RawIdentity[] = []
  // external_id first: it names the contact when a phone/bsuid has to move (DESIGN §1).
  if (o.external_id != null) out.push({ type: 'external_id', value: o.external_id })
  if (o.phone != null) out.push({ type: 'phone', value: o.phone })
  if (o.bsuid != null) out.push({ type: 'bsuid', value: o.bsuid })
  return out
}

const usersTrack: FastifyPluginAsyncTypebox = async (app) => {
  const max = app.config.BRAZE_MAX_OBJECTS
  app.post(
    '/users/track',
    {
      config: { scope: 'consent:write', errorShape: 'braze' },
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

      ;(body.attributes ?? []).forEach((raw, index) => {
        const o = raw as TrackAttributes
        if (o.external_id == null && o.phone == null) {
          early.push({ type: 'MISSING_IDENTIFIER', input_array: 'attributes', index, message: 'one of external_id or phone is required' })
          return
        }
        if (o._update_existing_only === true) {
          // Creating a contact the caller asked us not to create would be worse than refusing.
          early.push({
            type: 'UNSUPPORTED',
            input_array: 'attributes',
            index,
            message: '_update_existing_only is not supported; the object was not processed',
          })
          return
        }
        const identities = identitiesOf(o)
        const plan: ObjectPlan = { index, identifyAt: items.length, groupAt: [], set: {}, remove: [] }
        items.push({ identities, identifyOnly: true, source: 'users_track' })
        for (const g of o.subscription_groups ?? []) {
          plan.groupAt.push(items.length)
          items.push({
            identities,
            subscriptionGroupId: g.subscription_group_id,
            state: g.subscription_state,
            occurredAt: g.occurred_at,
            method: g.method,
            evidence: g.evidence,
            source: 'users_track',
          })
        }
        for (const [k, v] of Object.entries(o)) {
          if (RESERVED.has(k)) continue
          if (v === null) plan.remove.push(k)
          else plan.set[k] = v
        }
        plans.push(plan)
      })

      const idempotencyKey = request.headers['idempotency-key'] as string | undefined
      const ctx = { workspaceId, actor: `key:${request.principal.keyId}`, requestId: request.id, idempotencyKey }
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
          p.groupAt.forEach((at, j) => {
            const r = results[at]!
            if (r.status !== 'rejected') return
            errors.push({ type: brazeType(r), input_array: 'attributes', index: p.index, message: `subscription_groups[${j}]: ${r.message}` })
          })
        }
        await applyAttributePatches(tx, workspaceId, patches)

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

      if (idempotencyKey === undefined) {
        // Without a key: group commit with the workspace's other requests under load.
        const out = await app.appendGroups.submit({ ctx, items, finish })
        return reply.code(out.statusCode).send(out.body)
      }
      return replyIdempotent(app, request, reply, (tx) => app.appendGroups.runIn(tx, { ctx, items, finish }))
    },
  )
}

export default usersTrack
