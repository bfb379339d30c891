/**
 * GET /audit/export: NDJSON equals the pages of /audit/events; CSV goes through csv-stringify with
 * formula neutralisation of text cells while E.164 phones round-trip exactly; filters apply;
 * several export batches stream in order; unknown selectors answer 404 before any byte is sent.
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace } from '../../helpers/build-app.js'
import { EXPORT_BATCH } from '../../../src/audit/events.js'
import { keyWith, phoneItem } from '../../audit/helpers.js'

/** RFC 4180 reader (quotes, doubled quotes, embedded newlines). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"'
        i++
      } else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"') quoted = true
    else if (c === ',') {
      row.push(cell)
      cell = ''
    } else if (c === '\n') {
      row.push(cell)
      rows.push(row)
      row = []
      cell = ''
    } else if (c !== '\r') cell += c
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell)
    rows.push(row)
  }
  return rows
}

t.test('GET /audit/export', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])
  const sql = ta.app.database.sql

  // Hostile text in every caller-controlled text field, and phones (which start with '+').
  const hostile = [
    { ext: '=HYPERLINK("http://evil.example","x")', text: '=1+1', ua: '@SUM(A1)', doc: '-2+3', captured: '+cmd|calc' },
    { ext: '+SUM(1)', text: '\tTAB', ua: 'ok', doc: '\uFF1D1', captured: 'plain' },
    { ext: 'plain-user', text: 'line1\nline2, "quoted"', ua: 'Mozilla/5.0', doc: 'doc-1', captured: 'clerk' },
  ]
  const phones = ['+14155550123', '+447911123456', '+5511987654321']
  for (let i = 0; i < hostile.length; i++) {
    const h = hostile[i]!
    const res = await ta.app.ledger.append(sql, { workspaceId: ws.id, actor: 'test', idempotencyKey: i === 0 ? '=evil()' : undefined, requestId: i === 0 ? '-1+1' : undefined }, [
      {
        identities: [{ type: 'external_id', value: h.ext }, { type: 'phone', value: phones[i]! }],
        subscriptionGroupId: g,
        state: 'subscribed',
        source: 'api',
        method: 'web_form',
        evidence: { consent_text: h.text, user_agent: h.ua, document_ref: h.doc, captured_by: h.captured, nested: { n: 1 } },
      },
      phoneItem(phones[i]!, g, 'unsubscribed'),
    ])
    if (res.some((x) => x.status !== 'applied')) throw new Error(JSON.stringify(res))
  }
  const pages = (await ta.app.inject({ url: '/audit/events?limit=1000', headers: auditor })).json().events as Record<string, unknown>[]

  t.test('ndjson = the events of /audit/events, one per line', async (t) => {
    const r = await ta.app.inject({ url: '/audit/export', headers: auditor })
    t.equal(r.statusCode, 200)
    t.match(r.headers['content-type'], /^application\/x-ndjson/)
    t.match(r.headers['content-disposition'], /^attachment; filename="consent-events-.*\.ndjson"$/)
    t.ok(r.body.endsWith('\n'))
    const lines = r.body.trimEnd().split('\n').map((l) => JSON.parse(l))
    t.same(lines, pages)
  })

  t.test('csv: formulas neutralised, phones exact', async (t) => {
    const r = await ta.app.inject({ url: '/audit/export?format=csv', headers: auditor })
    t.equal(r.statusCode, 200)
    t.match(r.headers['content-type'], /^text\/csv/)
    const [header, ...rows] = parseCsv(r.body)
    t.equal(rows.length, pages.length, 'one row per event')
    const col = (name: string) => header!.indexOf(name)
    const cells = (name: string) => rows.map((row) => row[col(name)]!)
    t.same(cells('id'), pages.map((p) => p.id))
    t.same(cells('hash'), pages.map((p) => p.hash))
    // Phones: written exactly (no apostrophe), so a CSV reader gets the E.164 string back.
    const phoneCells = rows.filter((row) => row[col('identity_type')] === 'phone').map((row) => row[col('identity_value')])
    t.same(phoneCells, phones, 'E.164 phones round-trip unchanged')
    // Every other text cell that starts like a formula gets an apostrophe.
    const ext = rows.filter((row) => row[col('identity_type')] === 'external_id').map((row) => row[col('identity_value')])
    t.same(ext, [`'${hostile[0]!.ext}`, `'${hostile[1]!.ext}`, 'plain-user'])
    t.same(cells('evidence_consent_text').filter(Boolean), ["'=1+1", "'\tTAB", 'line1\nline2, "quoted"'])
    t.same(cells('evidence_user_agent').filter(Boolean), ["'@SUM(A1)", 'ok', 'Mozilla/5.0'])
    t.same(cells('evidence_document_ref').filter(Boolean), ["'-2+3", "'\uFF1D1", 'doc-1'])
    t.same(cells('evidence_captured_by').filter(Boolean), ["'+cmd|calc", 'plain', 'clerk'])
    t.equal(rows[0]![col('idempotency_key')], "'=evil()")
    t.equal(rows[0]![col('request_id')], "'-1+1")
    // No cell of the file (but the phones) starts with a formula character.
    const risky = rows.flat().filter((c) => /^[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/.test(c) && !phones.includes(c))
    t.same(risky, [], 'no formula-like cell left')
    // The full evidence is kept as JSON (starts with '{').
    t.same(JSON.parse(rows[0]![col('evidence')]!), pages[0]!.evidence)
    t.equal(rows[1]![col('method')], '', 'null as an empty cell')
  })

  t.test('filters apply; unknown selectors answer 404', async (t) => {
    const r = await ta.app.inject({ url: `/audit/export?phone=${encodeURIComponent(phones[1]!)}`, headers: auditor })
    const lines = r.body.trimEnd().split('\n').map((l) => JSON.parse(l))
    t.equal(lines.length, 2)
    t.ok(lines.every((l) => l.contact_id === lines[0].contact_id))
    const nf = await ta.app.inject({ url: '/audit/export?format=csv&external_id=nobody', headers: auditor })
    t.equal(nf.statusCode, 404)
    t.match(nf.headers['content-type'], /problem\+json/)
    t.equal((await ta.app.inject({ url: '/audit/export?format=xml', headers: auditor })).statusCode, 400)
    const other = await newWorkspace(ta, 'other')
    const empty = await ta.app.inject({ url: '/audit/export', headers: other.auth })
    t.equal(empty.statusCode, 200)
    t.equal(empty.body, '', 'another workspace exports nothing of this one')
    t.equal((await ta.app.inject({ url: '/audit/export?format=csv', headers: other.auth })).body.split('\n').filter(Boolean).length, 1, 'csv: the header only')
  })

  t.test('several batches stream in order', async (t) => {
    const n = EXPORT_BATCH * 2 + 17
    const items = Array.from({ length: n }, (_, i) => phoneItem(`+1415${String(3000000 + i).padStart(7, '0')}`, g, 'subscribed'))
    for (let i = 0; i < n; i += 2000) await ta.app.ledger.append(sql, { workspaceId: ws.id, actor: 'bulk' }, items.slice(i, i + 2000))
    const r = await ta.app.inject({ url: '/audit/export', headers: auditor })
    const ids = r.body.trimEnd().split('\n').map((l) => BigInt(JSON.parse(l).id))
    t.equal(ids.length, n + pages.length)
    t.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), 'strictly increasing ids')
    const csv = await ta.app.inject({ url: '/audit/export?format=csv', headers: auditor })
    t.equal(parseCsv(csv.body).length, n + pages.length + 1)
  })

  t.test('a failure half-way aborts the transfer instead of ending it cleanly', async (t) => {
    const real = ta.app.audit.readSql
    let exportPages = 0
    ta.app.audit.readSql = {
      ...real,
      query: async (text: string, params?: unknown[]) => {
        if (text.includes('ORDER BY e.id LIMIT') && ++exportPages === 2) throw new Error('connection lost')
        return real.query(text, params)
      },
    } as typeof real
    t.teardown(() => {
      ta.app.audit.readSql = real
    })
    await ta.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = ta.app.server.address() as { port: number }
    for (const format of ['ndjson', 'csv']) {
      exportPages = 0
      const res = await fetch(`http://127.0.0.1:${port}/audit/export?format=${format}`, { headers: auditor })
      t.equal(res.status, 200, 'the headers were already sent')
      await t.rejects(res.text(), `${format}: the client sees a broken transfer, not a short file`)
    }
  })
})
