/**
 * The CSV contract of bulk imports (docs/import.md), kept free of I/O so it is unit-tested alone:
 * header names → roles, and one staged row → one ledger item (plus its attribute patch and the
 * content key that finds rows repeating an earlier row of the same file).
 *
 * Decisions (documented here, where a reader of the format looks):
 * - Header names are matched case-insensitively after trimming; a name used twice is refused.
 *   Unknown columns become contact attributes under the header name as written (trimmed); an
 *   empty cell leaves that attribute untouched (a CSV cannot say "remove").
 * - An empty cell means "not given": the query defaults (`subscription_group_id`,
 *   `subscription_state`) fill group and state; a missing `occurred_at` is the upload time.
 * - `subscription_state` and `method` are matched case-insensitively. `occurred_at` is RFC 3339;
 *   a space instead of the `T` is accepted (`2026-01-31 10:00:00Z`), a time without offset is not.
 * - A row with more fields than the header is refused (`too_many_fields`); fewer fields mean
 *   empty trailing cells. A row whose cells are all empty is skipped (but keeps its row number).
 * - Row numbers are spreadsheet rows: the header is row 1, blank lines count, a quoted field that
 *   spans lines is one row.
 * - A row repeating an earlier row of the same file (same identities, group, state and
 *   occurred_at: see contentKeyOf) is refused as `duplicate`, naming the earlier row.
 * - Every event carries evidence {import_id, row, source_label?, consent_text, ...} and the
 *   ledger's exactly-once key `import:<import id>:<row>`; its actor is `import:<import id>`.
 */
import * as crypto from 'node:crypto'
import type { AppendItem, RawIdentity } from '../ledger/types.js'

export const IDENTITY_COLUMNS = ['external_id', 'phone', 'bsuid'] as const
export const EVIDENCE_COLUMNS = ['consent_text', 'consent_text_version', 'ip', 'user_agent', 'page_url', 'document_ref'] as const
export const KNOWN_COLUMNS = [
  ...IDENTITY_COLUMNS,
  'subscription_group_id',
  'subscription_state',
  'occurred_at',
  'method',
  ...EVIDENCE_COLUMNS,
] as const
export type KnownColumn = (typeof KNOWN_COLUMNS)[number]

/** Attribute keys: as written in the header, at most this long. */
const MAX_ATTRIBUTE_KEY = 256

export interface ImportDefaults {
  subscriptionGroupId?: string | null
  subscriptionState?: string | null
  sourceLabel?: string | null
}

/** The header, resolved: where each known column is, and the attribute columns. */
export interface ColumnMap {
  /** Index of each known column present. */
  known: Partial<Record<KnownColumn, number>>
  /** [index, attribute key] of every other column. */
  attributes: [number, string][]
  /** Number of header fields. */
  width: number
}

export class HeaderError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/** Resolve a header row; throws HeaderError when the file cannot be imported at all. */
export function mapHeader(header: string[], defaults: ImportDefaults): ColumnMap {
  const known: ColumnMap['known'] = {}
  const attributes: [number, string][] = []
  const seen = new Map<string, number>()
  header.forEach((raw, i) => {
    const name = raw.trim()
    const lower = name.toLowerCase()
    if (name.length === 0) throw new HeaderError('invalid_header', `header column ${i + 1} has no name`)
    if (seen.has(lower)) throw new HeaderError('invalid_header', `header column ${JSON.stringify(name)} appears twice (names are case-insensitive)`)
    seen.set(lower, i)
    if ((KNOWN_COLUMNS as readonly string[]).includes(lower)) known[lower as KnownColumn] = i
    else if (name.length > MAX_ATTRIBUTE_KEY) throw new HeaderError('invalid_header', `header column ${i + 1} is longer than ${MAX_ATTRIBUTE_KEY} characters`)
    else attributes.push([i, name])
  })
  if (!IDENTITY_COLUMNS.some((c) => known[c] !== undefined)) {
    throw new HeaderError('invalid_header', 'the header names none of external_id, phone, bsuid: every row needs one')
  }
  if (known.subscription_group_id === undefined && !defaults.subscriptionGroupId) {
    throw new HeaderError('invalid_header', 'no subscription_group_id column and no ?subscription_group_id= default')
  }
  if (known.subscription_state === undefined && !defaults.subscriptionState) {
    throw new HeaderError('invalid_header', 'no subscription_state column and no ?subscription_state= default')
  }
  return { known, attributes, width: header.length }
}

/** What one staged row becomes. */
export type MappedRow =
  | { kind: 'skip' }
  | { kind: 'error'; column: string; code: string; message: string }
  | {
      kind: 'item'
      item: AppendItem
      /** Attribute values to set on the contact once the event is applied. */
      attributes: Record<string, string> | null
    }

const SPACE_DATE_TIME = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})/

const md5hex: (s: string) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (s) => crypto.hash('md5', s) // one-shot, about 3x faster than createHash (Node >= 20.12)
    : (s) => crypto.createHash('md5').update(s).digest('hex')

const cellOf = (map: ColumnMap, fields: string[], c: KnownColumn): string => {
  const i = map.known[c]
  return i === undefined ? '' : (fields[i] ?? '').trim()
}

/**
 * Content key of a row, computed at upload: two rows with the same key record the same consent
 * twice (the later one is refused as `duplicate`). It covers the identities (phones by their
 * digits, so "+1 415-555-2671" and "14155552671" match; the ledger does the full libphonenumber
 * normalisation), the group, the state and occurred_at (as an instant); not evidence or attributes.
 * md5, written as a uuid (16 bytes in PostgreSQL).
 */
export function contentKeyOf(map: ColumnMap, defaults: ImportDefaults, fields: string[]): string {
  const ids: string[] = []
  for (const type of IDENTITY_COLUMNS) {
    const v = cellOf(map, fields, type)
    if (v !== '') ids.push(`${type}=${type === 'phone' ? v.replace(/\D/g, '') : v}`)
  }
  const group = (cellOf(map, fields, 'subscription_group_id') || defaults.subscriptionGroupId || '').toLowerCase()
  const state = (cellOf(map, fields, 'subscription_state') || defaults.subscriptionState || '').toLowerCase()
  let occurredAt = cellOf(map, fields, 'occurred_at')
  if (SPACE_DATE_TIME.test(occurredAt)) occurredAt = occurredAt.replace(' ', 'T')
  const t = occurredAt === '' ? '' : String(Date.parse(occurredAt))
  const h = md5hex(`${ids.join('\u0001')}\u0002${group}\u0002${state}\u0002${t}`)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

export interface RowContext {
  importId: string
  defaults: ImportDefaults
}

/** One staged row → a ledger item (validation of values is the ledger's, so codes match the API). */
export function mapRow(map: ColumnMap, ctx: RowContext, row: number, fields: string[]): MappedRow {
  if (fields.length > map.width) {
    return { kind: 'error', column: '', code: 'too_many_fields', message: `row has ${fields.length} fields, the header has ${map.width}` }
  }
  let empty = true
  for (const f of fields) {
    if (f.trim() !== '') {
      empty = false
      break
    }
  }
  if (empty) return { kind: 'skip' }

  const cell = (c: KnownColumn) => cellOf(map, fields, c)
  const identities: RawIdentity[] = []
  for (const type of IDENTITY_COLUMNS) {
    const v = cell(type)
    if (v !== '') identities.push({ type, value: v })
  }
  const group = cell('subscription_group_id') || ctx.defaults.subscriptionGroupId || ''
  const state = (cell('subscription_state') || ctx.defaults.subscriptionState || '').toLowerCase()
  let occurredAt = cell('occurred_at')
  if (SPACE_DATE_TIME.test(occurredAt)) occurredAt = occurredAt.replace(' ', 'T')
  const method = cell('method').toLowerCase()

  const evidence: Record<string, unknown> = { import_id: ctx.importId, row }
  if (ctx.defaults.sourceLabel) evidence.source_label = ctx.defaults.sourceLabel
  for (const c of EVIDENCE_COLUMNS) {
    const v = cell(c)
    if (v !== '') evidence[c] = v
  }

  let attributes: Record<string, string> | null = null
  for (const [i, key] of map.attributes) {
    const v = fields[i]
    if (v === undefined || v === '') continue
    ;(attributes ??= {})[key] = v
  }

  return {
    kind: 'item',
    item: {
      identities,
      subscriptionGroupId: group,
      state,
      occurredAt: occurredAt === '' ? undefined : occurredAt,
      source: 'csv_import',
      method: method === '' ? undefined : method,
      evidence,
      dedupeKey: `import:${ctx.importId}:${row}`,
    },
    attributes,
  }
}

/** The CSV column a ledger rejection points at ('' for the row as a whole). */
export function columnOf(pointer: string | undefined, code: string): string {
  switch (pointer) {
    case '/phone':
      return 'phone'
    case '/external_id':
      return 'external_id'
    case '/bsuid':
      return 'bsuid'
    case '/subscription_group_id':
      return 'subscription_group_id'
    case '/state':
      return 'subscription_state'
    case '/occurred_at':
      return 'occurred_at'
    case '/method':
      return 'method'
  }
  return code === 'invalid_evidence' ? 'consent_text' : ''
}
