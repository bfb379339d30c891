/**
 * Bulk imports (docs/architecture.md): `POST /imports` (text/csv, streamed), `GET /imports`,
 * `GET /imports/{id}`, `GET /imports/{id}/errors` (CSV).
 *
 * This plugin is encapsulated (not fp-wrapped) so its content-type parser, which hands the raw
 * request stream to the handler instead of reading the body, exists only here: the upload is
 * parsed and staged as it arrives and never held in memory whole. Fastify's bodyLimit does not
 * apply to a stream handed over untouched, so the 1 GiB limit is enforced while streaming (and
 * up front from Content-Length).
 *
 * Ids of another workspace answer 404 like unknown ids (workspaces are isolated).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Readable } from 'node:stream'
import { stringify } from 'csv-stringify/sync'
import { errorResponses } from '../../schemas/common.js'
import {
  CsvBody,
  ImportAcceptedSchema,
  ImportErrorsCsv,
  ImportIdParams,
  ImportListQuery,
  ImportListResponse,
  ImportSchema,
  ImportUploadQuery,
  type ImportDto,
} from '../../schemas/imports.js'
import { DomainError, notFound } from '../../errors/domain-error.js'
import type { ImportRecord } from '../../import/import-repository.js'
import { scoped, type RouteApp } from '../route-options.js'

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString())

export function toImportDto(imp: ImportRecord, now = new Date()): ImportDto {
  const started = imp.started_at ? new Date(imp.started_at).getTime() : null
  const end = imp.finished_at ? new Date(imp.finished_at).getTime() : now.getTime()
  const duration = started === null ? null : Math.max(0, end - started)
  return {
    id: imp.id,
    status: imp.status,
    source_label: imp.source_label,
    subscription_group_id: imp.default_subscription_group_id,
    subscription_state: imp.default_subscription_state,
    columns: imp.columns,
    file_bytes: Number(imp.file_bytes),
    file_sha256: imp.file_sha256,
    rows_total: imp.rows_total,
    rows_processed: imp.rows_processed,
    rows_applied: imp.rows_applied,
    rows_rejected: imp.rows_rejected,
    rows_duplicate: imp.rows_duplicate,
    errors_url: `/imports/${imp.id}/errors`,
    error: imp.status === 'failed' ? imp.last_error : null,
    created_at: iso(imp.created_at)!,
    started_at: iso(imp.started_at),
    finished_at: iso(imp.finished_at),
    duration_ms: duration,
    rows_per_second: duration === null ? null : duration === 0 ? null : Math.round((imp.rows_processed / duration) * 1000 * 10) / 10,
  }
}

/** Spreadsheet formula injection: a cell starting with = + - @ is prefixed with a quote. */
const neutralise = (s: string) => (/^[=+\-@\t\r]/.test(s) ? `'${s}` : s)

/** Rows of the file per page of the error report (a page holds at most this many lines). */
const ERROR_WINDOW = 10_000

const tags = ['imports']

/** `POST /imports`: a CSV file, stored before the answer and processed in the background. */
function uploadRoute(app: RouteApp) {
  app.post(
    '/imports',
    {
      bodyLimit: app.config.IMPORT_MAX_BYTES,
      config: { scope: 'consent:write' },
      schema: {
        tags,
        summary: 'Upload a CSV file of consents (streamed, up to 1 GiB)',
        description:
          'The file is stored before the answer (202) and processed in the background in batches; follow `Location`. ' +
          'Accepts `Idempotency-Key`: posting the same file again with the key answers the same import (`idempotent-replayed: true`) ' +
          'and stores nothing; another file or other query parameters with the key answer 422. ' +
          'A file that cannot be imported at all (no header, no identifier column, broken quoting) answers 400 and stores nothing; ' +
          'a bad row is refused alone and listed in `/imports/{id}/errors`.',
        querystring: ImportUploadQuery,
        body: { content: { 'text/csv': { schema: CsvBody } } },
        response: {
          202: { description: 'Stored; processing in the background', ...ImportAcceptedSchema },
          ...errorResponses(409, 413, 415, 422),
        },
      },
    },
    async (request, reply) => {
      // Another registered type (JSON) would arrive parsed, not as the stream of a CSV file.
      if (request.body === undefined || request.body === null) {
        throw new DomainError(400, 'empty_file', 'the file is empty: a header row is required')
      }
      if (!(request.body instanceof Readable)) {
        throw new DomainError(415, 'unsupported_media_type', 'POST /imports takes Content-Type: text/csv')
      }
      const limit = app.config.IMPORT_MAX_BYTES
      const length = Number(request.headers['content-length'])
      if (Number.isFinite(length) && length > limit) {
        throw new DomainError(413, 'body_too_large', `the file exceeds ${limit} bytes`)
      }
      const header = request.headers['idempotency-key']
      const out = await app.imports.upload({
        workspaceId: request.principal.workspaceId,
        actor: `key:${request.principal.keyId}`,
        requestId: request.id,
        idempotencyKey: Array.isArray(header) ? header[0] : header,
        defaults: {
          subscriptionGroupId: request.query.subscription_group_id ?? null,
          subscriptionState: request.query.subscription_state ?? null,
          sourceLabel: request.query.source_label ?? null,
        },
        body: request.body as Readable,
        limit,
      })
      if (out.replayed) reply.header('idempotent-replayed', 'true')
      else {
        request.log.info({ importId: out.imp.id, rows: out.imp.rows_total, bytes: Number(out.imp.file_bytes), ms: out.ms }, 'import stored')
        app.importWorker.wake()
      }
      return reply
        .code(202)
        .header('location', `/imports/${out.imp.id}`)
        .send({ id: out.imp.id, status: out.imp.status, rows_total: out.imp.rows_total })
    },
  )
}

/** `GET /imports` and `GET /imports/{id}`. */
function readRoutes(app: RouteApp) {
  app.get(
    '/imports',
    scoped('consent:read', {
      tags,
      summary: 'List imports, newest first',
      querystring: ImportListQuery,
      response: { 200: ImportListResponse, ...errorResponses() },
    }),
    async (request) => {
      const page = await app.importRecords.list(request.principal.workspaceId, {
        limit: request.query.limit ?? 50,
        cursor: request.query.cursor,
        status: request.query.status,
      })
      const now = new Date()
      return { imports: page.imports.map((i) => toImportDto(i, now)), next_cursor: page.next_cursor }
    },
  )

  app.get(
    '/imports/:id',
    scoped('consent:read', {
      tags,
      summary: 'An import: status, counts and timings',
      params: ImportIdParams,
      response: { 200: ImportSchema, ...errorResponses(404) },
    }),
    async (request) => {
      const imp = await app.importRecords.get(request.principal.workspaceId, request.params.id)
      if (!imp) throw notFound('import')
      return toImportDto(imp)
    },
  )
}

/** `GET /imports/{id}/errors`: the refused rows as CSV, streamed a window of rows at a time. */
function errorsRoute(app: RouteApp) {
  app.get(
    '/imports/:id/errors',
    scoped('consent:read', {
      tags,
      summary: 'The refused rows of an import, as CSV (row,column,code,message)',
      description:
        'Streamed in row order. `column` names the CSV column at fault, empty when the row as a whole is refused (e.g. `duplicate`, ' +
        '`evidence_required`). While the import runs, this lists the rows refused so far.',
      params: ImportIdParams,
      response: {
        200: { description: 'CSV', content: { 'text/csv': { schema: ImportErrorsCsv } } },
        ...errorResponses(404),
      },
    }),
    async (request, reply) => {
      const workspaceId = request.principal.workspaceId
      const imp = await app.importRecords.get(workspaceId, request.params.id)
      if (!imp) throw notFound('import')
      const last = await app.importRecords.lastErrorRow(workspaceId, imp.id)
      async function* lines() {
        yield 'row,column,code,message\n'
        for (let after = 0; after < last; after += ERROR_WINDOW) {
          const page = await app.importRecords.errorRange(workspaceId, imp!.id, after, after + ERROR_WINDOW)
          if (page.length > 0) yield stringify(page.map((e) => [e.row, neutralise(e.column), e.code, neutralise(e.message)]))
        }
      }
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="import-${imp.id}-errors.csv"`)
        .send(Readable.from(lines()) as unknown as string) // a stream: sent as it is read, not serialized
    },
  )
}

const imports: FastifyPluginAsyncTypebox = async (app) => {
  app.addContentTypeParser(['text/csv', 'application/csv'], (_request, payload, done) => done(null, payload))
  uploadRoute(app)
  readRoutes(app)
  errorsRoute(app)
}

export default imports
