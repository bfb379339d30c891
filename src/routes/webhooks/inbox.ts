/**
 * The webhook inbox, for operators, admin scope:
 *   GET  /webhooks/whatsapp/inbox              kept payloads (pending, unmapped, deferred, failed) by
 *                                              default, newest first; `?status=` narrows or `all`
 *   GET  /webhooks/whatsapp/inbox/{id}         one payload
 *   POST /webhooks/whatsapp/inbox/{id}/replay  processes it again now (exactly-once keys make a
 *                                              replay of an applied payload append nothing)
 * A caller sees the payloads of its own webhook URL, and of the operator's URL those that name a
 * number the operator mapped to it, and of those only the changes of its own numbers; operator
 * payloads of numbers mapped nowhere are the root key's alone (see src/webhook/inbox-repository.ts). Anything else answers 404, like an id that does not exist.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import { InboxEntrySchema, InboxIdParams, InboxListQuery, InboxListSchema } from '../../schemas/webhook.js'
import { notFound } from '../../errors/domain-error.js'
import { phoneNumberIdsOf } from '../../webhook/map-payload.js'
import { INBOX_STATUSES, KEPT_STATUSES, type InboxRepository, type InboxRow, type InboxStatus, type Viewer } from '../../webhook/inbox-repository.js'

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

/** The payload limited to the changes of `visible` numbers (and, for root, changes naming none). */
function filterPayload(payload: unknown, visible: Set<string>, whole: boolean): Obj | null {
  if (!isObj(payload)) return null
  const entries = Array.isArray(payload.entry) ? payload.entry : []
  const kept = entries
    .filter(isObj)
    .map((entry) => {
      const changes = (Array.isArray(entry.changes) ? entry.changes : []).filter((c) => {
        const id = isObj(c) && isObj(c.value) && isObj(c.value.metadata) ? c.value.metadata.phone_number_id : undefined
        return typeof id === 'string' ? visible.has(id) : whole
      })
      return { ...entry, changes }
    })
    .filter((entry) => entry.changes.length > 0)
  return { ...payload, entry: kept }
}

export async function toInboxEntry(inbox: InboxRepository, viewer: Viewer, row: InboxRow) {
  let payload: unknown = null
  try {
    payload = JSON.parse(row.raw_body)
  } catch {
    payload = null
  }
  const visible = await inbox.visibleNumbers(viewer, phoneNumberIdsOf(payload), row)
  return {
    id: row.id,
    received_at: new Date(row.received_at).toISOString(),
    status: row.status,
    attempts: Number(row.attempts),
    last_error: row.last_error,
    processed_at: row.processed_at ? new Date(row.processed_at).toISOString() : null,
    body_sha256: row.body_sha256,
    phone_number_ids: row.phone_number_ids.filter((n) => visible.has(n)),
    // A row from the viewer's own URL is its own whole; an operator row shows the root key what names no number.
    payload: filterPayload(payload, visible, row.workspace_id !== null || viewer.isRoot),
  }
}

const inboxRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const tags = ['whatsapp webhook']
  const { inbox, processor } = app.whatsapp
  const viewerOf = (p: { workspaceId: string; isRoot: boolean }): Viewer => ({ workspaceId: p.workspaceId, isRoot: p.isRoot })

  app.get(
    '/webhooks/whatsapp/inbox',
    {
      config: { scope: 'admin' },
      schema: { tags, summary: 'List stored webhook payloads (kept ones by default)', querystring: InboxListQuery, response: { 200: InboxListSchema, ...errorResponses() } },
    },
    async (request) => {
      const viewer = viewerOf(request.principal)
      const q = request.query
      const statuses: InboxStatus[] = q.status === undefined ? KEPT_STATUSES : q.status === 'all' ? [...INBOX_STATUSES] : [q.status]
      const limit = q.limit ?? 50
      const rows = await inbox.listVisible(viewer, { statuses, before: q.cursor, limit })
      const payloads = []
      for (const r of rows) payloads.push(await toInboxEntry(inbox, viewer, r))
      return { payloads, next_cursor: rows.length === limit ? rows[rows.length - 1]!.id : null }
    },
  )

  app.get(
    '/webhooks/whatsapp/inbox/:id',
    {
      config: { scope: 'admin' },
      schema: { tags, summary: 'Read one stored webhook payload', params: InboxIdParams, response: { 200: InboxEntrySchema, ...errorResponses(404) } },
    },
    async (request) => {
      const viewer = viewerOf(request.principal)
      const row = await inbox.getVisible(viewer, request.params.id)
      if (!row) throw notFound('webhook payload')
      return toInboxEntry(inbox, viewer, row)
    },
  )

  app.post(
    '/webhooks/whatsapp/inbox/:id/replay',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Process a stored webhook payload again',
        description: 'Reprocesses the payload now, whatever its status; what it already recorded is a duplicate by its exactly-once keys and is not appended again.',
        params: InboxIdParams,
        response: { 200: InboxEntrySchema, ...errorResponses(404) },
      },
    },
    async (request) => {
      const viewer = viewerOf(request.principal)
      if (!(await inbox.getVisible(viewer, request.params.id))) throw notFound('webhook payload')
      await processor.process(request.params.id, 'replay', { requestId: request.id, log: request.log })
      const row = await inbox.getVisible(viewer, request.params.id)
      if (!row) throw notFound('webhook payload')
      return toInboxEntry(inbox, viewer, row)
    },
  )
}

export default inboxRoutes
