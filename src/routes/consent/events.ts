/**
 * `POST /consent/events`: up to 10,000 native events in one set-based append, answered per item in
 * input order. Shape errors answer 400 and change nothing; an item that is well-formed but invalid
 * (bad phone, unknown group, evidence_required, ...) is rejected alone while the rest apply.
 *
 * Body limit: 10,000 events do not fit in the default 1 MiB JSON limit (about 100 bytes each
 * even without evidence), so this route alone takes up to EVENTS_BODY_LIMIT (or BODY_LIMIT if
 * an operator set that higher).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Static } from '@fastify/type-provider-typebox'
import { ConsentEventsBody, ConsentEventsResponse } from '../../schemas/consent.js'
import { errorResponses } from '../../schemas/common.js'
import type { AppendItem, ItemResult, RawIdentity } from '../../ledger/types.js'
import { replyIdempotent } from '../idempotent-reply.js'
import { appendContext } from '../route-options.js'

type NativeEvent = Static<typeof ConsentEventsBody>['events'][number]

export function identitiesOf(e: { external_id?: string; phone?: string; bsuid?: string }): RawIdentity[] {
  const out: RawIdentity[] = []
  if (e.external_id !== undefined) out.push({ type: 'external_id', value: e.external_id })
  if (e.phone !== undefined) out.push({ type: 'phone', value: e.phone })
  if (e.bsuid !== undefined) out.push({ type: 'bsuid', value: e.bsuid })
  return out
}

export function toAppendItem(e: NativeEvent): AppendItem {
  return {
    identities: identitiesOf(e),
    subscriptionGroupId: e.subscription_group_id,
    state: e.state,
    occurredAt: e.occurred_at,
    source: 'api',
    method: e.method,
    evidence: e.evidence,
  }
}

export function toItemResponse(r: ItemResult, index: number) {
  if (r.status === 'rejected') return { index, status: r.status, code: r.code, message: r.message }
  return { index, status: r.status, event_id: 'event_id' in r ? r.event_id : undefined, contact_id: r.contact_id }
}

/** 10,000 events of about 1.6 KB each (identities, group, time, method and some evidence). */
export const EVENTS_BODY_LIMIT = 16 * 1024 * 1024

const events: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/consent/events',
    {
      bodyLimit: Math.max(app.config.BODY_LIMIT, EVENTS_BODY_LIMIT),
      config: { scope: 'consent:write' },
      schema: {
        tags: ['consent'],
        summary: 'Append native consent events (up to 10,000)',
        description: 'Accepts `Idempotency-Key`. Each item is applied, a duplicate, or rejected with a code; valid items apply even when others fail.',
        body: ConsentEventsBody,
        response: { 200: ConsentEventsResponse, ...errorResponses(409, 413, 415, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => {
        const results = await app.ledger.append(
          tx,
          appendContext(request),
          request.body.events.map(toAppendItem),
        )
        const body = {
          applied: results.filter((r) => r.status === 'applied').length,
          duplicates: results.filter((r) => r.status === 'duplicate').length,
          rejected: results.filter((r) => r.status === 'rejected').length,
          results: results.map(toItemResponse),
        }
        return { statusCode: 200, body }
      }),
  )
}

export default events
