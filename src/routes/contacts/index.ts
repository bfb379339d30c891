/**
 * Contacts administration (docs/architecture.md): list with filters and keyset pagination, read one contact
 * with its state per group, patch attributes and tags, and the admin consent toggle.
 *
 * Decisions (kept here, where a reader of the routes looks):
 * - Ids of another workspace, unknown ids and malformed ids all answer the same 404 `not_found`.
 *   A contact merged into another answers 404 `contact_merged` naming the survivor (see
 *   contact-service.ts).
 * - PATCH takes `{attributes?: {key: value|null}, tags?: {add?: [], remove?: []}}`: attributes
 *   merge key by key (null removes), tags are added/removed, never replaced wholesale.
 * - The toggle appends one `source: admin` event through the ledger (the only writer). Rejections
 *   map to problems: unknown contact or group → 404 (as the pre-send check does for an unknown
 *   group), archived group → 409 `archived_subscription_group`, a person's opt-out without evidence
 *   → 422 `evidence_required`, any other invalid field → 400 with the ledger's code.
 * - Writes (PATCH, toggle) accept `Idempotency-Key`; the work and the stored answer commit together.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import {
  ATTRIBUTE_FILTER,
  ContactConsentBody,
  ContactConsentResponse,
  ContactDetailSchema,
  ContactIdParams,
  ContactListQuery,
  ContactListResponse,
  MAX_ATTRIBUTE_FILTERS,
  PatchContactSchema,
} from '../../schemas/contacts.js'
import { DomainError, badRequest, conflict, notFound, unprocessable } from '../../errors/domain-error.js'
import type { ItemResult } from '../../ledger/types.js'
import { replyIdempotent } from '../idempotent-reply.js'
import { appendContext, scoped, type RouteApp } from '../route-options.js'

/** `attribute[key]=value` pairs from the parsed query (validated by the schema's patternProperties). */
function attributeFilters(query: Record<string, unknown>): [string, string][] {
  const out: [string, string][] = []
  for (const [k, v] of Object.entries(query)) {
    const m = ATTRIBUTE_FILTER.exec(k)
    if (m && typeof v === 'string') out.push([m[1]!, v])
  }
  if (out.length > MAX_ATTRIBUTE_FILTERS) throw badRequest('too_many_filters', `at most ${MAX_ATTRIBUTE_FILTERS} attribute filters`)
  if (out.some(([k]) => k.includes('\u0000'))) {
    throw badRequest('invalid_filter', 'attribute keys cannot contain NUL characters')
  }
  return out
}

/** A ledger rejection of the admin toggle as the problem the caller sees. */
function toggleError(r: Extract<ItemResult, { status: 'rejected' }>): DomainError {
  switch (r.code) {
    case 'unknown_contact':
      return notFound('contact')
    case 'unknown_subscription_group':
      return notFound('subscription group')
    case 'archived_subscription_group':
      return conflict('archived_subscription_group', r.message)
    case 'evidence_required':
      return unprocessable('evidence_required', r.message)
    default:
      return badRequest(r.code, r.message, r.pointer ? [{ pointer: `/body${r.pointer}`, code: r.code, message: r.message }] : undefined)
  }
}

const tags = ['contacts']

/** `GET /contacts` and `GET /contacts/{id}`. */
function readRoutes(app: RouteApp) {
  app.get(
    '/contacts',
    scoped('consent:read', {
      tags,
      summary: 'List live contacts, filtered, by keyset pages',
      description:
        'Filters combine with AND: `q` (substring of any identity value), `tag` (repeatable), `attribute[<key>]=<value>` ' +
        '(attribute read as text equals value; repeatable with different keys), `subscription_group_id` (+ `state`: ' +
        'subscribed | unsubscribed | unknown). Pages are in contact id order; follow `next_cursor` until it is null. ' +
        'Merged-away contacts are never listed.',
      querystring: ContactListQuery,
      response: { 200: ContactListResponse, ...errorResponses(404) },
    }),
    async (request) => {
      const q = request.query
      return app.contacts.list(request.principal.workspaceId, {
        q: q.q,
        tags: q.tag,
        attributes: attributeFilters(q as Record<string, unknown>),
        subscriptionGroupId: q.subscription_group_id,
        state: q.state,
        cursor: q.cursor,
        limit: q.limit ?? 50,
      })
    },
  )

  app.get(
    '/contacts/:id',
    scoped('consent:read', {
      tags,
      summary: 'Read a contact: identities, attributes, tags, state per group, platform stops',
      params: ContactIdParams,
      response: { 200: ContactDetailSchema, ...errorResponses(404) },
    }),
    async (request) => app.contacts.detail(request.principal.workspaceId, request.params.id),
  )
}

/** `PATCH /contacts/{id}` (attributes, tags) and `POST /contacts/{id}/consent` (the admin toggle). */
function writeRoutes(app: RouteApp) {
  app.patch(
    '/contacts/:id',
    scoped('consent:write', {
      tags,
      summary: "Change a contact's attributes and tags",
      description:
        '`attributes` merge key by key (a null value removes the key); `tags.add` / `tags.remove` add and remove tags. ' +
        'Answers the contact as `GET /contacts/{id}` does. Accepts `Idempotency-Key`.',
      params: ContactIdParams,
      body: PatchContactSchema,
      response: { 200: ContactDetailSchema, ...errorResponses(404, 409, 415, 422) },
    }),
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => ({
        statusCode: 200,
        body: await app.contacts.patch(tx, request.principal.workspaceId, request.params.id, request.body),
      })),
  )

  app.post(
    '/contacts/:id/consent',
    scoped('consent:write', {
      tags,
      summary: "Set a contact's consent in one group (the admin toggle)",
      description:
        'Appends one ledger event with `source: admin`. Overriding an opt-out the person made needs `method` and evidence ' +
        '(consent_text, document_ref, page_url or ip) unless the workspace setting `require_evidence_to_override_opt_out` ' +
        'is off: otherwise 422 `evidence_required`. Unknown contact or group: 404; archived group: 409. Accepts `Idempotency-Key`.',
      params: ContactIdParams,
      body: ContactConsentBody,
      response: { 201: ContactConsentResponse, ...errorResponses(404, 409, 415, 422) },
    }),
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => {
        const workspaceId = request.principal.workspaceId
        const contactId = await app.contacts.requireLive(tx, workspaceId, request.params.id)
        const b = request.body
        const [r] = await app.ledger.append(
          tx,
          appendContext(request),
          [
            {
              contactId,
              subscriptionGroupId: b.subscription_group_id,
              state: b.state,
              occurredAt: b.occurred_at,
              method: b.method,
              evidence: b.evidence,
              source: 'admin',
            },
          ],
        )
        if (r!.status === 'rejected') throw toggleError(r!)
        if (r!.status !== 'applied') throw new Error(`unexpected ledger result ${r!.status}`)
        return {
          statusCode: 201,
          body: {
            event_id: r!.event_id,
            contact_id: r!.contact_id,
            subscription_group_id: b.subscription_group_id.toLowerCase(),
            state: b.state,
            changed: r!.changed,
          },
        }
      }),
  )
}

const contacts: FastifyPluginAsyncTypebox = async (app) => {
  readRoutes(app)
  writeRoutes(app)
}

export default contacts
