/**
 * Braze-compatible subscription routes (docs/braze.md):
 * - `POST /subscription/status/set` (v1) and `POST /v2/subscription/status/set`: one ledger append
 *   per request (source `api`), one item per identifier; each identifier is its own change (an
 *   external_id and a phone in the same request are NOT linked to each other: linking identities is
 *   /users/track's job, where they arrive in one object).
 * - `GET /subscription/status/get`: one group, up to 50 identifiers, read from the projection.
 * - `GET /subscription/user/status`: every (non-archived) group with the person's status, paged.
 *
 * Unknown group ids (another workspace's included: workspaces are isolated):
 * - v1, where the group is the request's single target (like a path id): 404, nothing written;
 * - v2, where each subscription_groups entry is an item of a batch: the item error
 *   BAD_SUBSCRIPTION_GROUP_ID, the other entries apply;
 * - status/get: 404.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Sql } from '../../db/sql.js'
import type { GroupService } from '../../groups/group-service.js'
import type { AppendItem } from '../../ledger/types.js'
import { badRequest, notFound } from '../../errors/domain-error.js'
import {
  BRAZE_MAX_IDENTIFIERS,
  brazeErrorResponses,
  StatusGetQuery,
  StatusGetResponse,
  StatusSetResponse,
  StatusSetV1Body,
  StatusSetV2Body,
  StatusSetV2Item,
  UserStatusQuery,
  UserStatusResponse,
  type BrazeItemError,
  type BrazeStatus,
} from '../../schemas/braze.js'
import { brazeType, GROUP_LEVEL_CODES, toBrazeStatus } from '../../braze/errors.js'
import type { UserStatusIdentifier } from '../../braze/user-status.js'
import { normalizeIdentity } from '../../contacts/identity.js'
import { replyIdempotent } from '../idempotent-reply.js'
import { appendContext, type RouteApp } from '../route-options.js'
import { checkV2Item, doubleOptInProblem, unsupportedIdentifier, type ItemProblem } from '../../braze/item-check.js'
import type { Static } from '@fastify/type-provider-typebox'

type V2Item = Static<typeof StatusSetV2Item>

const asList = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v])

/** The email identifiers of a status query: one UNSUPPORTED_IDENTIFIER item error each. */
function emailErrors(q: { email?: string[]; 'email[]'?: string[] }): BrazeItemError[] {
  return (['email', 'email[]'] as const).flatMap((name) =>
    (q[name] ?? []).map((_v, index) => ({ input_array: name, index, ...unsupportedIdentifier('email') })),
  )
}

function tooMany(pointer: string, given: number, where = 'per request') {
  return badRequest('too_many_identifiers', `At most ${BRAZE_MAX_IDENTIFIERS} identifiers ${where} (got ${given}).`, [
    { pointer, code: 'TOO_MANY_IDENTIFIERS', message: `at most ${BRAZE_MAX_IDENTIFIERS} identifiers ${where}` },
  ])
}

/** v1's single target group: unknown (or another workspace's) answers 404, archived 400. */
async function requireActiveGroup(groups: GroupService, tx: Sql, workspaceId: string, id: string): Promise<void> {
  const g = await groups.findArchived(tx, workspaceId, id)
  if (!g) throw notFound('subscription group')
  if (g.archived) {
    throw badRequest('archived_subscription_group', `subscription group ${id} is archived`, [
      { pointer: '/body/subscription_group_id', code: 'ARCHIVED_SUBSCRIPTION_GROUP', message: 'the subscription group is archived' },
    ])
  }
}

const tags = ['braze']

/** `POST /subscription/status/set` (Braze v1): one group, up to 50 identifiers. */
function statusSetV1Route(app: RouteApp) {
  app.post(
    '/subscription/status/set',
    {
      config: { scope: 'consent:write', errorShape: 'braze', inputGuard: 'envelope' },
      schema: {
        tags,
        summary: 'Braze v1: set one subscription group state for up to 50 users',
        description:
          'Accepts `Idempotency-Key`. external_id (string or array) and/or phone (string or array), at most 50 in all. ' +
          'Extensions: occurred_at, method, evidence. An unknown subscription_group_id answers 404; item errors (INVALID_PHONE, EVIDENCE_REQUIRED, ...) ' +
          'appear in errors[] with input_array "external_id"/"phone" and the rest applies.',
        body: StatusSetV1Body,
        response: { 201: StatusSetResponse, ...brazeErrorResponses(404, 409, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const b = request.body
      const externalIds = asList(b.external_id)
      const phones = asList(b.phone)
      const emails = asList(b.email)
      const total = externalIds.length + phones.length + emails.length
      if (total === 0) {
        throw badRequest('missing_identifier', 'Give external_id and/or phone.', [
          { pointer: '/body/external_id', code: 'MISSING_IDENTIFIER', message: 'external_id or phone is required' },
        ])
      }
      if (total > BRAZE_MAX_IDENTIFIERS) throw tooMany('/body', total, 'per request (external_id, phone and email together)')

      return replyIdempotent(app, request, reply, async (tx) => {
        const ctx = appendContext(request)
        await requireActiveGroup(app.groups, tx, ctx.workspaceId, b.subscription_group_id)
        const unsupported = emails.map((_v, index): BrazeItemError => ({ input_array: 'email', index, ...unsupportedIdentifier('email') }))
        const doubleOptIn = doubleOptInProblem(b)
        if (doubleOptIn) {
          // Nothing is recorded: each identifier answers why.
          const errors: BrazeItemError[] = [
            ...externalIds.map((_v, index) => ({ input_array: 'external_id', index, ...doubleOptIn })),
            ...phones.map((_v, index) => ({ input_array: 'phone', index, ...doubleOptIn })),
            ...unsupported,
          ]
          return { statusCode: 201, body: { message: 'success', errors } }
        }
        const origin: { input_array: 'external_id' | 'phone'; index: number }[] = []
        const item = (type: 'external_id' | 'phone', value: string): AppendItem => ({
          identities: [{ type, value }],
          subscriptionGroupId: b.subscription_group_id,
          state: b.subscription_state,
          occurredAt: b.occurred_at,
          method: b.method,
          evidence: b.evidence,
          source: 'api',
        })
        const items: AppendItem[] = []
        externalIds.forEach((v, index) => (items.push(item('external_id', v)), origin.push({ input_array: 'external_id', index })))
        phones.forEach((v, index) => (items.push(item('phone', v)), origin.push({ input_array: 'phone', index })))
        const results = items.length > 0 ? await app.ledger.append(tx, ctx, items) : []

        const errors: BrazeItemError[] = []
        results.forEach((r, k) => {
          if (r.status !== 'rejected') return
          if (GROUP_LEVEL_CODES.has(r.code)) {
            // A top-level field (occurred_at, method, evidence) is wrong: the request as a whole is.
            throw badRequest(r.code, r.message, [{ pointer: `/body${r.pointer ?? ''}`, code: brazeType(r), message: r.message }])
          }
          errors.push({ type: brazeType(r), ...origin[k]!, message: r.message })
        })
        errors.push(...unsupported)
        return { statusCode: 201, body: { message: 'success', ...(errors.length > 0 ? { errors } : {}) } }
      })
    },
  )
}

/** `POST /v2/subscription/status/set` (Braze v2): several groups, each an item of the batch. */
function statusSetV2Route(app: RouteApp) {
  app.post(
    '/v2/subscription/status/set',
    {
      config: { scope: 'consent:write', errorShape: 'braze', inputGuard: 'envelope' },
      schema: {
        tags,
        summary: 'Braze v2: set several subscription groups, up to 50 users each',
        description:
          'Accepts `Idempotency-Key`. Each subscription_groups entry takes external_ids and/or phones, at most 50 in all, and the extensions ' +
          'occurred_at, method, evidence. An entry whose group is unknown (or another workspace\'s), archived, or whose state/occurred_at/method/evidence ' +
          'is invalid answers one error with input_array "subscription_groups" and its index; a bad identifier answers an error with input_array ' +
          '"subscription_groups[i].external_ids" or "subscription_groups[i].phones" and its index. Everything else applies.',
        body: StatusSetV2Body,
        response: { 201: StatusSetResponse, ...brazeErrorResponses(409, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const entries = request.body.subscription_groups as unknown[]
      /** Item errors found before the append (shape of each item), with the entry they belong to. */
      const early: { entry: number; error: BrazeItemError }[] = []
      const usable: { entry: number; item: V2Item }[] = []
      entries.forEach((raw, i) => {
        const p = checkV2Item(raw) ?? doubleOptInProblem(raw as V2Item)
        const fail = (q: ItemProblem) => early.push({ entry: i, error: { type: q.type, input_array: 'subscription_groups', index: i, message: q.message } })
        if (p) return void fail(p)
        const e = raw as V2Item
        const emails = asList(e.emails)
        const total = (e.external_ids?.length ?? 0) + asList(e.phones).length + emails.length
        if (total === 0) return void fail({ type: 'MISSING_IDENTIFIER', message: 'external_ids and/or phones is required' })
        if (total > BRAZE_MAX_IDENTIFIERS) {
          return void fail({ type: 'TOO_MANY_IDENTIFIERS', message: `at most ${BRAZE_MAX_IDENTIFIERS} identifiers per subscription_groups item (got ${total})` })
        }
        emails.forEach((_v, index) => {
          const q = unsupportedIdentifier('email')
          early.push({ entry: i, error: { type: q.type, input_array: `subscription_groups[${i}].emails`, index, message: q.message } })
        })
        usable.push({ entry: i, item: e })
      })

      return replyIdempotent(app, request, reply, async (tx) => {
        const items: AppendItem[] = []
        const origin: { entry: number; input_array: string; index: number }[] = []
        for (const { entry: i, item: e } of usable) {
          const add = (type: 'external_id' | 'phone', list: string[], name: string) =>
            list.forEach((value, index) => {
              items.push({
                identities: [{ type, value }],
                subscriptionGroupId: e.subscription_group_id,
                state: e.subscription_state,
                occurredAt: e.occurred_at,
                method: e.method,
                evidence: e.evidence,
                source: 'api',
              })
              origin.push({ entry: i, input_array: `subscription_groups[${i}].${name}`, index })
            })
          add('external_id', e.external_ids ?? [], 'external_ids')
          add('phone', asList(e.phones), 'phones')
        }
        const results = items.length > 0 ? await app.ledger.append(tx, appendContext(request), items) : []

        const found: { entry: number; error: BrazeItemError }[] = [...early]
        const reported = new Set<string>()
        results.forEach((r, k) => {
          if (r.status !== 'rejected') return
          const o = origin[k]!
          if (GROUP_LEVEL_CODES.has(r.code)) {
            // Same for every identifier of the entry: reported once, on the entry.
            const key = `${o.entry}/${r.code}`
            if (reported.has(key)) return
            reported.add(key)
            found.push({ entry: o.entry, error: { type: brazeType(r), input_array: 'subscription_groups', index: o.entry, message: r.message } })
            return
          }
          found.push({ entry: o.entry, error: { type: brazeType(r), input_array: o.input_array, index: o.index, message: r.message } })
        })
        // In item order (a stable sort: an item's own errors keep their order).
        const errors = found.sort((a, b) => a.entry - b.entry).map((f) => f.error)
        return { statusCode: 201, body: { message: 'success', ...(errors.length > 0 ? { errors } : {}) } }
      })
    },
  )
}

/** `GET /subscription/status/get`: users' states in one group, from the projection. */
function statusGetRoute(app: RouteApp) {
  app.get(
    '/subscription/status/get',
    {
      config: { scope: 'consent:read', errorShape: 'braze' },
      schema: {
        tags,
        summary: "Braze: users' states in one subscription group",
        description:
          'external_id and phone are repeatable (also as external_id[] / phone[]), at most 50 in all; unlike Braze, both kinds are answered when both are given ' +
          '(on a clash of the same string, the external_id answer is kept). Never-seen identifiers answer Unknown and create nothing; an invalid phone answers ' +
          'Unknown plus an INVALID_PHONE error. An unknown subscription_group_id (or another workspace\'s) answers 404.',
        querystring: StatusGetQuery,
        response: { 200: StatusGetResponse, ...brazeErrorResponses(404) },
      },
    },
    async (request) => {
      const q = request.query
      const externalIds = [...(q.external_id ?? []), ...(q['external_id[]'] ?? [])]
      const phones = [...(q.phone ?? []), ...(q['phone[]'] ?? [])]
      const emails = emailErrors(q)
      const total = externalIds.length + phones.length + emails.length
      if (total === 0) {
        throw badRequest('missing_identifier', 'Give external_id and/or phone.', [
          { pointer: '/querystring/external_id', code: 'MISSING_IDENTIFIER', message: 'external_id or phone is required' },
        ])
      }
      if (total > BRAZE_MAX_IDENTIFIERS) throw tooMany('/querystring', total, 'per request (external_id and phone together)')

      const ids = [
        ...externalIds.map((value) => ({ type: 'external_id' as const, value })),
        ...phones.map((value) => ({ type: 'phone' as const, value })),
      ]
      const results = ids.length > 0 ? await app.checks.check(request.principal.workspaceId, { subscription_group_id: q.subscription_group_id }, ids) : []
      const status: Record<string, BrazeStatus> = {}
      const errors: BrazeItemError[] = []
      results.forEach((r, k) => {
        const given = ids[k]!
        // The check skips the phone parser for E.164-shaped input (its hot path); 50 are cheap to check here.
        if (r.error === 'invalid_identifier' || normalizeIdentity(given.type, given.value) === null) {
          const isPhone = given.type === 'phone'
          errors.push({
            type: isPhone ? 'INVALID_PHONE' : 'INVALID_EXTERNAL_ID',
            input_array: given.type,
            index: isPhone ? k - externalIds.length : k,
            message: `${given.type} ${JSON.stringify(given.value)} is not valid`,
          })
        }
        if (given.type === 'phone' && given.value in status) return
        status[given.value] = toBrazeStatus(r.state)
      })
      errors.push(...emails)
      return { status, message: 'success', ...(errors.length > 0 ? { errors } : {}) }
    },
  )
}

/** `GET /subscription/user/status`: a user's status in every group, paged over the groups. */
function userStatusRoute(app: RouteApp) {
  app.get(
    '/subscription/user/status',
    {
      config: { scope: 'consent:read', errorShape: 'braze' },
      schema: {
        tags,
        summary: "Braze: a user's status in every subscription group",
        description:
          'external_id and/or phone, repeatable (also as external_id[] / phone[]), at most 50 in all: one entry in users per distinct identifier, ' +
          'listing the non-archived groups (oldest first) with Subscribed / Unsubscribed / Unknown. limit (default and max 100) and offset page over ' +
          'the groups; total_count is the number of groups. A never-seen identifier lists every group as Unknown and creates nothing.',
        querystring: UserStatusQuery,
        response: { 200: UserStatusResponse, ...brazeErrorResponses() },
      },
    },
    async (request) => {
      const q = request.query
      const ids: UserStatusIdentifier[] = []
      for (const name of ['external_id', 'external_id[]', 'phone', 'phone[]'] as const) {
        const type = name.startsWith('phone') ? 'phone' : 'external_id'
        ;(q[name] ?? []).forEach((value, index) => ids.push({ type, value, input_array: name, index }))
      }
      const emails = emailErrors(q)
      if (ids.length + emails.length === 0) {
        throw badRequest('missing_identifier', 'Give external_id and/or phone.', [
          { pointer: '/querystring/external_id', code: 'MISSING_IDENTIFIER', message: 'external_id or phone is required' },
        ])
      }
      if (ids.length + emails.length > BRAZE_MAX_IDENTIFIERS) {
        throw tooMany('/querystring', ids.length + emails.length, 'per request (external_id, phone and email together)')
      }
      const page = await app.braze.userStatus(request.principal.workspaceId, ids, {
        limit: q.limit ?? 100,
        offset: q.offset ?? 0,
      })
      return {
        users: page.users,
        total_count: page.total_count,
        message: 'success',
        ...(page.errors.length + emails.length > 0 ? { errors: [...page.errors, ...emails] } : {}),
      }
    },
  )
}

const subscriptionStatus: FastifyPluginAsyncTypebox = async (app) => {
  statusSetV1Route(app)
  statusSetV2Route(app)
  statusGetRoute(app)
  userStatusRoute(app)
}

export default subscriptionStatus
