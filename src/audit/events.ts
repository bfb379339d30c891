/**
 * Ledger reads for auditors: `GET /audit/events` (keyset pages) and `GET /audit/export` (streamed).
 *
 * Decisions:
 * - Order: the ledger id (`consent_events.id`, monotonic). Cursors are opaque base64url of
 *   `e1:<last id>`; a page costs the same at any depth (the primary key serves the seek).
 * - `from` / `to` filter on `recorded_at` (when the ledger recorded the event: database time),
 *   half-open `[from, to)`. recorded_at is the ledger's own clock and the partition key of the
 *   ledger (docs/architecture.md), unlike `occurred_at`, which the caller reports. Use
 *   `GET /audit/state?basis=occurred` for questions about when people acted.
 * - Contact selectors (`contact_id`, `external_id`, `phone`, `bsuid`) name a contact: an identity
 *   names the contact that holds it now. The result covers that contact's events AND the events of
 *   every contact merged into it (they count for it), i.e. contacts with
 *   `id = X OR merged_into = X`. A merged-away contact's id selects its own events only. Several
 *   selectors combine with AND (the intersection of those sets). A recycled number's previous owner
 *   is not included (see its `identity_moved_out` event, `source=merge`).
 * - A selector or `subscription_group_id` that names nothing in the caller's workspace answers 404
 *   `not_found`, exactly like one that exists in another workspace (so another workspace's ids
 *   cannot be probed). An invalid phone is 400 `invalid_phone`.
 * - Appends commit concurrently with a walk: an event whose transaction commits after a page past
 *   its id was read is not seen by that walk. A closed period (`to` a few seconds in the past) is
 *   stable. An export reads up to the highest id visible when it starts, so it always ends.
 * - Export streams keyset batches of EXPORT_BATCH rows (one short statement each, no long
 *   transaction, no server-side cursor holding a connection), so memory is constant whatever the
 *   size. PostgreSQL renders the text (the JSON line, or the CSV cells), so the service handles one
 *   string per row and no per-event objects; with small batches almost nothing survives a young
 *   generation GC, and the resident memory stays flat (bench/audit-export.mjs: 1,000,000 events with
 *   the service under 200 MB RSS; with 2,000-row batches V8 let the old generation grow past that).
 *   NDJSON is one event per line, the same objects (same keys, same order) as /audit/events:
 *   lossless. CSV goes through csv-stringify with `escape_formulas`: a text cell starting with
 *   = + - @ TAB CR (or their full-width forms) gets a leading apostrophe, except an
 *   `identity_value` that is an E.164 phone (`+` and 2 to 15 digits, harmless), which is written
 *   exactly so phones round-trip. The usual evidence fields get columns of their own (a value that is
 *   not a string is its JSON text), and the whole evidence is in the `evidence` column as JSON. A
 *   failure half-way through aborts the response (the client sees a truncated transfer, never a
 *   short file that looks complete).
 */
import { Readable } from 'node:stream'
import { stringify } from 'csv-stringify'
import type { Sql } from '../db/sql.js'
import { lookupPhone } from '../contacts/identity.js'
import { badRequest, notFound } from '../errors/domain-error.js'
import { parseDateTime } from '../input/date-time.js'
import { EVENT_COLUMNS, toAuditEvent, type AuditEvent, type EventRow } from './event-row.js'

export interface EventFilter {
  contact_id?: string
  external_id?: string
  phone?: string
  bsuid?: string
  subscription_group_id?: string
  source?: string
  type?: string
  from?: string
  to?: string
}

export interface ResolvedFilter {
  /** null: every contact. */
  contactIds: string[] | null
  groupId: string | null
  source: string | null
  type: string | null
  from: Date | null
  to: Date | null
}

export const EXPORT_BATCH = 200

export function encodeEventCursor(id: string): string {
  return Buffer.from(`e1:${id}`, 'utf8').toString('base64url')
}

export function decodeEventCursor(cursor: string): string {
  const m = /^e1:(\d{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!m) {
    throw badRequest('invalid_cursor', 'cursor is not a next_cursor this API returned', [{ pointer: '/querystring/cursor', message: 'invalid cursor' }])
  }
  return m[1]!
}

/** The contact an identity names now (the live holder), or null. */
export async function contactOfIdentity(sql: Sql, workspaceId: string, type: 'external_id' | 'phone' | 'bsuid', raw: string): Promise<string | null> {
  let value = raw.trim()
  if (type === 'phone') {
    const p = lookupPhone(raw)
    if (!p) throw badRequest('invalid_phone', `phone ${JSON.stringify(raw)} is not a valid phone number`, [{ pointer: '/querystring/phone', message: 'invalid phone' }])
    value = p
  }
  const [row] = await sql.query<{ contact_id: string }>(
    `SELECT contact_id FROM identities WHERE workspace_id = $1 AND type = $2 AND value = $3`,
    [workspaceId, type, value],
  )
  return row?.contact_id ?? null
}

/** The contact and every contact merged into it (they count for it). Empty if it does not exist. */
export async function familyOf(sql: Sql, workspaceId: string, contactId: string): Promise<string[]> {
  const rows = await sql.query<{ id: string }>(
    `SELECT id FROM contacts WHERE workspace_id = $1 AND (id = $2 OR merged_into = $2) ORDER BY id`,
    [workspaceId, contactId.toLowerCase()],
  )
  return rows.some((r) => r.id === contactId.toLowerCase()) ? rows.map((r) => r.id) : []
}

function parseTime(v: string | undefined, pointer: string): Date | null {
  if (v === undefined) return null
  const d = parseDateTime(v)
  if (d === null) throw badRequest('invalid_time', `${pointer.split('/').pop()} must be an RFC 3339 date-time`, [{ pointer, message: 'invalid date-time' }])
  return d
}

export async function resolveFilter(sql: Sql, workspaceId: string, f: EventFilter): Promise<ResolvedFilter> {
  const from = parseTime(f.from, '/querystring/from')
  const to = parseTime(f.to, '/querystring/to')
  if (from && to && from.getTime() > to.getTime()) {
    throw badRequest('invalid_period', '`from` is after `to`', [{ pointer: '/querystring/from', message: 'after to' }])
  }
  let contactIds: string[] | null = null
  const narrow = (ids: string[]) => {
    contactIds = contactIds === null ? ids : contactIds.filter((id) => ids.includes(id))
  }
  if (f.contact_id !== undefined) {
    const fam = await familyOf(sql, workspaceId, f.contact_id)
    if (fam.length === 0) throw notFound('contact')
    narrow(fam)
  }
  for (const type of ['external_id', 'phone', 'bsuid'] as const) {
    const v = f[type]
    if (v === undefined) continue
    const c = await contactOfIdentity(sql, workspaceId, type, v)
    if (!c) throw notFound('contact')
    narrow(await familyOf(sql, workspaceId, c))
  }
  let groupId: string | null = null
  if (f.subscription_group_id !== undefined) {
    groupId = f.subscription_group_id.toLowerCase()
    const [g] = await sql.query(`SELECT 1 FROM subscription_groups WHERE workspace_id = $1 AND id = $2`, [workspaceId, groupId])
    if (!g) throw notFound('subscription group')
  }
  return { contactIds, groupId, source: f.source ?? null, type: f.type ?? null, from, to }
}

/** WHERE clause of a filter (parameters appended to `params`, $1 = workspace). */
function whereOf(f: ResolvedFilter, params: unknown[], afterId: string | null, upTo: string | null): string {
  const p = (v: unknown) => {
    params.push(v)
    return `$${params.length}`
  }
  const where = ['e.workspace_id = $1']
  if (f.contactIds !== null) where.push(`e.contact_id = ANY(${p(f.contactIds)}::uuid[])`)
  if (f.groupId !== null) where.push(`e.subscription_group_id = ${p(f.groupId)}::uuid`)
  if (f.source !== null) where.push(`e.source = ${p(f.source)}`)
  if (f.type !== null) where.push(`e.type = ${p(f.type)}`)
  if (f.from !== null) where.push(`e.recorded_at >= ${p(f.from.toISOString())}::timestamptz`)
  if (f.to !== null) where.push(`e.recorded_at < ${p(f.to.toISOString())}::timestamptz`)
  if (afterId !== null) where.push(`e.id > ${p(afterId)}::bigint`)
  if (upTo !== null) where.push(`e.id <= ${p(upTo)}::bigint`)
  return where.join(' AND ')
}

/** One statement: the events after `afterId` (exclusive), in id order. */
async function page(sql: Sql, workspaceId: string, f: ResolvedFilter, afterId: string | null, limit: number): Promise<EventRow[]> {
  if (f.contactIds !== null && f.contactIds.length === 0) return []
  const params: unknown[] = [workspaceId]
  const where = whereOf(f, params, afterId, null)
  params.push(limit)
  return sql.query<EventRow>(`SELECT ${EVENT_COLUMNS} FROM consent_events e WHERE ${where} ORDER BY e.id LIMIT $${params.length}::int`, params)
}

export async function listEvents(
  sql: Sql,
  workspaceId: string,
  f: EventFilter & { cursor?: string; limit: number },
): Promise<{ events: AuditEvent[]; next_cursor: string | null }> {
  const after = f.cursor !== undefined ? decodeEventCursor(f.cursor) : null
  const resolved = await resolveFilter(sql, workspaceId, f)
  const rows = await page(sql, workspaceId, resolved, after, f.limit + 1)
  const more = rows.length > f.limit
  const events = rows.slice(0, f.limit).map(toAuditEvent)
  return { events, next_cursor: more ? encodeEventCursor(events[events.length - 1]!.id) : null }
}

// --- export ---------------------------------------------------------------------------------
// The export lets PostgreSQL render the text (one JSON line, or the CSV cells, per row): the
// service then only moves strings, no Date/JSON objects per event, which keeps the garbage, hence
// the resident memory, small and flat whatever the size of the export (bench/audit-export.mjs).

/** RFC 3339 UTC with milliseconds, exactly as Date.prototype.toISOString writes it. */
const iso = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
/** A JSON string literal, or null. */
const js = (expr: string) => `COALESCE(to_json(${expr})::text, 'null')`

/** One NDJSON line per event: the object of /audit/events, same keys in the same order. */
const NDJSON_LINE = `'{"id":"' || e.id || '","event_id":"' || e.event_id || '","workspace_id":"' || e.workspace_id ||
  '","contact_id":"' || e.contact_id || '","type":' || ${js('e.type')} || ',"subscription_group_id":' || ${js('e.subscription_group_id')} ||
  ',"state":' || ${js('e.state')} || ',"occurred_at":"' || ${iso('e.occurred_at')} || '","recorded_at":"' || ${iso('e.recorded_at')} ||
  '","source":' || ${js('e.source')} || ',"method":' || ${js('e.method')} || ',"evidence":' || e.evidence::text ||
  ',"identity_type":' || ${js('e.identity_type')} || ',"identity_value":' || ${js('e.identity_value')} || ',"actor":' || ${js('e.actor')} ||
  ',"request_id":' || ${js('e.request_id')} || ',"idempotency_key":' || ${js('e.idempotency_key')} ||
  ',"platform_stop":' || ${js('e.platform_stop')} || ',"prev_hash":"' || e.prev_hash || '","hash":"' || e.hash || '"}'`

/** Evidence fields that get their own CSV column (the whole evidence is in `evidence` too). */
export const CSV_EVIDENCE_COLUMNS = ['consent_text', 'consent_text_version', 'ip', 'user_agent', 'page_url', 'document_ref', 'captured_by'] as const

export const CSV_COLUMNS = [
  'id',
  'event_id',
  'workspace_id',
  'contact_id',
  'type',
  'subscription_group_id',
  'state',
  'occurred_at',
  'recorded_at',
  'source',
  'method',
  'identity_type',
  'identity_value',
  'actor',
  'request_id',
  'idempotency_key',
  'platform_stop',
  ...CSV_EVIDENCE_COLUMNS.map((c) => `evidence_${c}`),
  'evidence',
  'prev_hash',
  'hash',
] as const

/** The CSV cells as text (null: empty cell); an evidence field that is not a string is its JSON text. */
const CSV_SELECT = CSV_COLUMNS.map((c) => {
  if (c === 'id') return `e.id::text AS id`
  if (c === 'occurred_at' || c === 'recorded_at') return `${iso(`e.${c}`)} AS ${c}`
  if (c === 'evidence') return `e.evidence::text AS evidence`
  if (c.startsWith('evidence_')) return `e.evidence->>'${c.slice('evidence_'.length)}' AS ${c}`
  return `e.${c}::text AS ${c}`
}).join(', ')

/** Every matching event, in id order, as text rows, in keyset batches: constant memory. */
async function* exportRows<T extends { id: string }>(sql: Sql, workspaceId: string, f: ResolvedFilter, select: string, batch: number): AsyncGenerator<T[]> {
  if (f.contactIds !== null && f.contactIds.length === 0) return
  const [top] = await sql.query<{ max: string | null }>(`SELECT max(id)::text AS max FROM consent_events WHERE workspace_id = $1`, [workspaceId])
  const upTo = top?.max ?? null
  if (upTo === null) return
  let after: string | null = null
  for (;;) {
    const params: unknown[] = [workspaceId]
    const where = whereOf(f, params, after, upTo)
    const rows = await sql.query<T>(`SELECT ${select} FROM consent_events e WHERE ${where} ORDER BY e.id LIMIT ${batch}`, params)
    if (rows.length === 0) return
    yield rows
    if (rows.length < batch) return
    after = rows[rows.length - 1]!.id
  }
}

export function ndjsonStream(sql: Sql, workspaceId: string, f: ResolvedFilter, batch = EXPORT_BATCH): Readable {
  return Readable.from(
    (async function* () {
      for await (const rows of exportRows<{ id: string; line: string }>(sql, workspaceId, f, `e.id::text AS id, ${NDJSON_LINE} AS line`, batch)) {
        let chunk = ''
        for (const r of rows) chunk += `${r.line}\n`
        yield chunk
      }
    })(),
    { objectMode: false },
  )
}

const E164 = /^\+[1-9]\d{1,14}$/

export function csvStream(sql: Sql, workspaceId: string, f: ResolvedFilter, batch = EXPORT_BATCH): Readable {
  const stringifier = stringify({
    header: true,
    columns: CSV_COLUMNS.map((key) => ({ key })),
    escape_formulas: true,
    cast: {
      // A phone is kept exact: `+` then digits is no formula anyone can abuse, and it must round-trip.
      string: (value, context) =>
        context.column === 'identity_value' && E164.test(value) ? { value, escape_formulas: false } : value,
    },
  })
  const source = Readable.from(
    (async function* () {
      for await (const rows of exportRows<Record<string, string | null> & { id: string }>(sql, workspaceId, f, CSV_SELECT, batch)) yield* rows
    })(),
  )
  source.on('error', (err) => stringifier.destroy(err))
  source.pipe(stringifier)
  return stringifier
}
