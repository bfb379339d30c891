/**
 * Upload → staging: the request body is streamed through a byte meter (size limit, sha256), the
 * csv-parse stream parser, and a row sink that writes parsed rows to `import_rows` (COPY on
 * PostgreSQL, batched multi-row INSERTs on PGlite), with backpressure end to end: memory stays
 * bounded whatever the file size, and nothing is buffered whole.
 *
 * A file whose *structure* is broken (a quote never closed, a record over MAX_RECORD_BYTES) is
 * refused as a whole (400 `malformed_csv`, with the line) and nothing is stored; quotes inside
 * unquoted fields are kept literally (`relax_quotes`). A row whose *content* is bad is refused
 * alone, later, by the worker.
 */
import { parse } from 'csv-parse'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { PassThrough, Transform, Writable, type Readable } from 'node:stream'
import { pipeline, finished } from 'node:stream/promises'
import type pg from 'pg'
import copyStreams from 'pg-copy-streams'
import type { Sql } from '../db/sql.js'
import { DomainError } from '../errors/domain-error.js'
import { contentKeyOf, HeaderError, mapHeader, type ColumnMap, type ImportDefaults } from './columns.js'

/** One staged record: `seq` counts staged rows (1, 2, 3...), `row` is its spreadsheet row (the header is row 1). */
export interface StagedRow {
  seq: number
  row: number
  fields: string[]
  /** contentKeyOf(): rows with equal keys repeat each other. */
  key: string
}

/** Where parsed rows go. `write` resolves when the sink can take more (backpressure). */
export interface RowSink {
  write(rows: StagedRow[]): Promise<void>
  end(): Promise<void>
  /** Abandon (the surrounding transaction rolls back). */
  abort(err: Error): void
}

export interface StageResult {
  header: string[]
  map: ColumnMap
  rowsTotal: number
  bytes: number
  sha256: string
}

/** A single record (row) may not exceed this many bytes. */
export const MAX_RECORD_BYTES = 1024 * 1024
/**
 * Rows handed to the sink at once. Small batches die young (V8 collects them in the young
 * generation instead of promoting them), which keeps the peak memory of a large upload low at no
 * cost in speed.
 */
export const FLUSH_ROWS = 200
const FLUSH_CHARS = 64 * 1024

/** PostgreSQL text cannot hold NUL: it becomes U+FFFD (the replacement character). */
const clean = (s: string) => (s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s)

/** Counts and hashes the bytes going through; errors with 413 past `limit`. */
export function meter(limit: number) {
  const hash = createHash('sha256')
  let bytes = 0
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length
      if (bytes > limit) return cb(new DomainError(413, 'body_too_large', `the file exceeds ${limit} bytes`))
      hash.update(chunk)
      cb(null, chunk)
    },
  })
  return { stream, result: () => ({ bytes, sha256: hash.digest('hex') }) }
}

/**
 * The request body as a pipeline's source that the pipeline cannot destroy. A failed pipeline
 * (the size limit, a broken CSV, a lost database) destroys its source, and destroying the request
 * resets the connection before the error answer is written: the client saw ECONNRESET instead of
 * 413. Here the request is only unpiped; the error handler then drains it or closes the
 * connection after the answer (src/plugins/error-handler.ts).
 */
function fromRequest(source: Readable): Readable {
  const pass = new PassThrough()
  const onError = (err: Error) => pass.destroy(err)
  // A client that goes away mid-upload: the same error the pipeline would have seen.
  const onClose = () => {
    if (!source.readableEnded) pass.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }))
  }
  source.on('error', onError)
  source.once('close', onClose)
  source.pipe(pass)
  pass.once('close', () => {
    source.unpipe(pass)
    source.off('error', onError)
    source.off('close', onClose)
    // Whatever is left of the body is read and discarded (bounded by the error handler).
    source.resume()
  })
  return pass
}

/** sha256 and size of a stream, read to the end and discarded (an Idempotency-Key replay). */
export async function digestStream(source: Readable, limit: number): Promise<{ bytes: number; sha256: string }> {
  const m = meter(limit)
  await pipeline(fromRequest(source), m.stream, new Writable({ write: (_c, _e, cb) => cb() }))
  return m.result()
}

/**
 * Parse `source` as CSV and stage every non-blank data row into `sink`. Throws DomainError
 * 400/413 for files that cannot be imported at all (nothing is committed then: the caller's
 * transaction rolls back).
 *
 * The parser's records are taken from its 'data' events into batches (a per-record Writable
 * costs more than the parsing itself); while a batch is being written the parser is paused, so
 * at most one input chunk and one batch are in memory.
 */
export async function stageCsv(source: Readable, sink: RowSink, opts: { limit: number; defaults: ImportDefaults }): Promise<StageResult> {
  const m = meter(opts.limit)
  const parser = parse({ bom: true, relax_column_count: true, relax_quotes: true, max_record_size: MAX_RECORD_BYTES })
  let header: string[] | null = null
  let map: ColumnMap | null = null
  // Spreadsheet numbering: every record counts, blank lines included (they parse as [""]).
  let rowNo = 0
  let rowsTotal = 0
  let pending: StagedRow[] = []
  let pendingChars = 0
  let failure: unknown = null
  let writing: Promise<void> = Promise.resolve()

  const flush = () => {
    const rows = pending
    pending = []
    pendingChars = 0
    return rows.length === 0 ? Promise.resolve() : sink.write(rows)
  }
  const fail = (err: unknown) => {
    failure ??= err
    parser.destroy()
    source.unpipe?.()
    source.resume?.() // let the rest of the request drain; the answer goes out meanwhile
  }

  parser.on('data', (fields: string[]) => {
    if (failure !== null) return
    rowNo++
    if (header === null) {
      try {
        header = fields.map(clean)
        map = mapHeader(header, opts.defaults)
      } catch (err) {
        fail(err instanceof HeaderError ? new DomainError(400, err.code, err.message) : err)
      }
      return
    }
    let blank = true
    let chars = 0
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!
      if (blank && f.trim() !== '') blank = false
      if (f.includes('\u0000')) fields[i] = clean(f)
      chars += f.length
    }
    if (blank) return
    rowsTotal++
    pending.push({ seq: rowsTotal, row: rowNo, fields, key: contentKeyOf(map!, opts.defaults, fields) })
    pendingChars += chars
    if (pending.length >= FLUSH_ROWS || pendingChars >= FLUSH_CHARS) {
      parser.pause()
      writing = flush().then(() => {
        if (failure === null) parser.resume()
      })
      writing.catch(fail)
    }
  })

  try {
    await pipeline(fromRequest(source), m.stream, parser)
  } catch (err) {
    failure ??= err
  }
  try {
    await writing
    if (failure === null) {
      await flush()
      if (header === null) throw new DomainError(400, 'empty_file', 'the file is empty: a header row is required')
      await sink.end()
    }
  } catch (err) {
    failure ??= err
  }
  if (failure !== null) {
    sink.abort(failure as Error)
    throw toUploadError(failure)
  }
  const { bytes, sha256 } = m.result()
  return { header: header!, map: map!, rowsTotal, bytes, sha256 }
}

/** csv-parse's structural errors become 400 `malformed_csv`; DomainErrors pass through. */
function toUploadError(err: unknown): unknown {
  if (err instanceof DomainError) return err
  const code = (err as { code?: string }).code
  if (typeof code === 'string' && code.startsWith('CSV_')) {
    return new DomainError(400, 'malformed_csv', `the file is not valid CSV: ${(err as Error).message}`)
  }
  if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || (err as Error).message === 'aborted') {
    return new DomainError(400, 'upload_aborted', 'the upload ended before the whole file arrived')
  }
  return err
}

// --- encoding ---------------------------------------------------------------------------------

/**
 * A row's fields as they go into COPY's text format: a JSON array (JSON escapes newlines, tabs
 * and control characters itself), with the backslashes of its escapes doubled for COPY.
 */
export function copyFields(fields: string[]): string {
  const json = JSON.stringify(fields)
  return json.includes('\\') ? json.replaceAll('\\', '\\\\') : json
}

// --- sinks ------------------------------------------------------------------------------------

/** PostgreSQL: COPY FROM STDIN on the upload transaction's client (pg-copy-streams). */
export function copySink(client: pg.PoolClient, workspaceId: string, importId: string): RowSink {
  // Some data in flight, so parsing here and ingesting in PostgreSQL overlap.
  const copy = client.query(copyStreams.from('COPY import_rows (workspace_id, import_id, seq, row_number, fields, key) FROM STDIN', { highWaterMark: 256 * 1024 }))
  const prefix = `${workspaceId}\t${importId}\t`
  // A failed COPY (or one we abort) errors the stream; keep the error for the next write/end
  // instead of letting it escape as an unhandled 'error' event.
  let failed: Error | null = null
  copy.on('error', (err) => {
    failed ??= err
  })
  return {
    async write(rows) {
      if (failed) throw failed
      let chunk = ''
      for (const r of rows) chunk += `${prefix}${r.seq}\t${r.row}\t${copyFields(r.fields)}\t${r.key}\n`
      if (!copy.write(chunk)) await once(copy, 'drain')
    },
    async end() {
      if (failed) throw failed
      copy.end()
      await finished(copy)
    },
    abort(err) {
      failed ??= err
      copy.destroy(err)
    },
  }
}

/** PGlite (embedded): multi-row INSERTs through unnest, one statement per flush. */
export function insertSink(tx: Sql, workspaceId: string, importId: string): RowSink {
  return {
    async write(rows) {
      await tx.query(
        `INSERT INTO import_rows (workspace_id, import_id, seq, row_number, fields, key)
         SELECT $1, $2, x.s, x.r, x.f, x.k FROM unnest($3::int[], $4::int[], $5::text[], $6::uuid[]) AS x(s, r, f, k)`,
        [workspaceId, importId, rows.map((r) => r.seq), rows.map((r) => r.row), rows.map((r) => JSON.stringify(r.fields)), rows.map((r) => r.key)],
      )
    },
    async end() {},
    abort() {},
  }
}
