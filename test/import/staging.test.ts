/** Upload parsing and staging, without a database: a sink in memory records what would be COPYed. */
import t from 'tap'
import { Readable } from 'node:stream'
import { createHash } from 'node:crypto'
import { copyFields, FLUSH_ROWS, stageCsv, type RowSink, type StagedRow } from '../../src/import/staging.js'
import { DomainError } from '../../src/errors/domain-error.js'

function memorySink() {
  const rows: StagedRow[] = []
  const state = { ended: false, aborted: null as Error | null }
  const sink: RowSink = {
    async write(r) {
      rows.push(...r.map((x) => ({ seq: x.seq, row: x.row, fields: [...x.fields], key: x.key })))
    },
    async end() {
      state.ended = true
    },
    abort(err) {
      state.aborted = err
    },
  }
  return { sink, rows, state }
}

const defaults = { subscriptionGroupId: null, subscriptionState: null }
const HEADER = 'phone,subscription_group_id,subscription_state'

/** Feeds `text` in small chunks, so records straddle chunk boundaries. */
const source = (text: string | Buffer, chunk = 7) => {
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8')
  const parts: Buffer[] = []
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk))
  return Readable.from(parts)
}

t.test('BOM, CRLF, quoted fields (commas, quotes, newlines), blank lines keep spreadsheet row numbers', async (t) => {
  const csv = `\uFEFF${HEADER},Note\r\n+14155552671,g,subscribed,"a, ""quoted"" note"\r\n\r\n+14155552672,g,subscribed,"two\nlines"\r\n,,,\r\n+14155552673,g,subscribed,bad"quote\r\n`
  const { sink, rows, state } = memorySink()
  const r = await stageCsv(source(csv), sink, { limit: 1 << 20, defaults })
  t.same(r.header, ['phone', 'subscription_group_id', 'subscription_state', 'Note'], 'the BOM is not part of the first name')
  t.equal(r.rowsTotal, 3)
  t.equal(new Set(rows.map((r) => r.key)).size, 3, 'content keys')
  t.match(rows, [
    { seq: 1, row: 2, fields: ['+14155552671', 'g', 'subscribed', 'a, "quoted" note'] },
    { seq: 2, row: 4, fields: ['+14155552672', 'g', 'subscribed', 'two\nlines'] },
    { seq: 3, row: 6, fields: ['+14155552673', 'g', 'subscribed', 'bad"quote'] },
  ])
  t.equal(r.bytes, Buffer.byteLength(csv))
  t.equal(r.sha256, createHash('sha256').update(csv).digest('hex'))
  t.ok(state.ended)
})

t.test('NUL characters (which PostgreSQL text cannot hold) become U+FFFD', async (t) => {
  const { sink, rows } = memorySink()
  await stageCsv(source(`${HEADER},x\n+14155552671,g,subscribed,a\u0000b\n`), sink, { limit: 1 << 20, defaults })
  t.same(rows[0]!.fields[3], 'a\uFFFDb')
})

t.test('files that cannot be imported at all are refused with a reason and nothing is kept', async (t) => {
  const cases: [string, string | Buffer, number, string, RegExp][] = [
    ['empty', '', 400, 'empty_file', /header row is required/],
    ['no identifier column', 'name,subscription_group_id,subscription_state\nx,g,subscribed\n', 400, 'invalid_header', /none of external_id/],
    ['unclosed quote', `${HEADER}\n+14155552671,"g,subscribed\n+1,g,x\n`, 400, 'malformed_csv', /Quote Not Closed/],
    ['too large', `${HEADER}\n${'+14155552671,g,subscribed\n'.repeat(100)}`, 413, 'body_too_large', /exceeds 1000 bytes/],
  ]
  for (const [name, csv, status, code, message] of cases) {
    const { sink, state } = memorySink()
    const err = await stageCsv(source(csv, 64), sink, { limit: 1000, defaults }).then(
      () => null,
      (e: unknown) => e,
    )
    t.ok(err instanceof DomainError, `${name}: a DomainError`)
    t.match(err, { statusCode: status, code, message }, name)
    t.ok(state.aborted && !state.ended, `${name}: the sink is abandoned, never ended`)
  }
})

t.test('a header alone is an import of zero rows', async (t) => {
  const { sink, rows } = memorySink()
  const r = await stageCsv(source(`${HEADER}\n`), sink, { limit: 1 << 20, defaults })
  t.equal(r.rowsTotal, 0)
  t.same(rows, [])
})

t.test('many rows go through in order, in batches, with backpressure', async (t) => {
  let csv = `${HEADER}\n`
  for (let i = 0; i < 25_000; i++) csv += `+1415${String(2000000 + i).padStart(7, '0')},g,subscribed\n`
  let max = 0
  let n = 0
  let last = 1
  const sink: RowSink = {
    async write(rows) {
      max = Math.max(max, rows.length)
      for (const r of rows) {
        if (r.row !== last + 1 || r.seq !== r.row - 1) throw new Error(`row ${r.row} (seq ${r.seq}) after ${last}`)
        last = r.row
        n++
      }
      await new Promise((res) => setImmediate(res))
    },
    async end() {},
    abort() {},
  }
  const r = await stageCsv(source(csv, 64 * 1024), sink, { limit: 1 << 30, defaults })
  t.equal(r.rowsTotal, 25_000)
  t.equal(n, 25_000)
  t.ok(max > 1 && max <= FLUSH_ROWS, `batches of at most ${FLUSH_ROWS} rows (max ${max})`)
})

t.test('COPY encoding: a JSON array with its backslashes doubled', async (t) => {
  t.equal(copyFields(['a', 'b c']), '["a","b c"]')
  t.equal(copyFields(['tab\there', 'line\nbreak', 'back\\slash', 'q"uote']), '["tab\\\\there","line\\\\nbreak","back\\\\\\\\slash","q\\\\"uote"]')
})
