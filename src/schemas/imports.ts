/** Bulk imports (docs/architecture.md): `POST /imports` (text/csv), `GET /imports`, `GET /imports/{id}`, errors CSV. */
import { Type, type Static } from '@fastify/type-provider-typebox'
import { DateTime, Uuid } from './common.js'

export const ImportStatusSchema = Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed')])

export const ImportUploadQuery = Type.Object(
  {
    subscription_group_id: Type.Optional(
      Type.String({ format: 'uuid', description: 'Group for rows whose `subscription_group_id` cell is empty (or when the column is absent).' }),
    ),
    subscription_state: Type.Optional(
      Type.Union([Type.Literal('subscribed'), Type.Literal('unsubscribed')], {
        description: 'State for rows whose `subscription_state` cell is empty (or when the column is absent).',
      }),
    ),
    source_label: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000]*$', description: 'Free text copied into every event\'s evidence (`source_label`).' }),
    ),
  },
  { additionalProperties: false },
)
export type ImportUploadQueryType = Static<typeof ImportUploadQuery>

/** The request body as documented: the CSV itself (the route streams it; nothing validates it as JSON). */
export const CsvBody = Type.Unsafe<unknown>({
  description:
    'CSV with a header row (names case-insensitive, UTF-8, BOM tolerated, RFC 4180 quoting): external_id, phone, bsuid (at least one per row), ' +
    'subscription_group_id, subscription_state, occurred_at (RFC 3339), method, consent_text, consent_text_version, ip, user_agent, page_url, ' +
    'document_ref. Any other column becomes a contact attribute. Up to 1 GiB.',
})

export const ImportAcceptedSchema = Type.Object({
  id: Uuid,
  status: ImportStatusSchema,
  rows_total: Type.Integer({ description: 'Data rows stored (header and blank lines excluded)' }),
})

export const ImportSchema = Type.Object(
  {
    id: Uuid,
    status: ImportStatusSchema,
    source_label: Type.Union([Type.String(), Type.Null()]),
    subscription_group_id: Type.Union([Uuid, Type.Null()], { description: 'The default group given at upload' }),
    subscription_state: Type.Union([Type.String(), Type.Null()], { description: 'The default state given at upload' }),
    columns: Type.Array(Type.String(), { description: 'The header row as uploaded' }),
    file_bytes: Type.Integer(),
    file_sha256: Type.String(),
    rows_total: Type.Integer(),
    rows_processed: Type.Integer(),
    rows_applied: Type.Integer({ description: 'Rows recorded in the ledger' }),
    rows_rejected: Type.Integer({ description: 'Rows refused (listed in /errors with their code)' }),
    rows_duplicate: Type.Integer({ description: 'Rows repeating an earlier row of the file (listed in /errors with code `duplicate`)' }),
    errors_url: Type.String(),
    error: Type.Union([Type.String(), Type.Null()], { description: 'Why the import failed (status failed)' }),
    created_at: DateTime,
    started_at: Type.Union([DateTime, Type.Null()]),
    finished_at: Type.Union([DateTime, Type.Null()]),
    duration_ms: Type.Union([Type.Integer(), Type.Null()], { description: 'From started_at to finished_at (or to now while running)' }),
    rows_per_second: Type.Union([Type.Number(), Type.Null()], { description: 'rows_processed / duration' }),
  },
  { description: 'A bulk import: status, counts and timings' },
)
export type ImportDto = Static<typeof ImportSchema>

export const ImportIdParams = Type.Object({ id: Type.String({ description: 'Import id (uuid)' }) }, { additionalProperties: false })

export const ImportListQuery = Type.Object(
  {
    status: Type.Optional(ImportStatusSchema),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Opaque `next_cursor` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50, description: 'Page size (default 50, at most 200)' })),
  },
  { additionalProperties: false },
)

export const ImportListResponse = Type.Object({
  imports: Type.Array(ImportSchema),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
})

export const ImportErrorsCsv = Type.String({
  description: 'CSV with header `row,column,code,message`, one line per refused row in row order (rows numbered like a spreadsheet: the header is row 1).',
})
