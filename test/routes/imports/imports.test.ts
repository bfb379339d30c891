/**
 * POST /imports, GET /imports, GET /imports/{id}, GET /imports/{id}/errors against real PostgreSQL,
 * with the in-process worker doing the processing.
 */
import t from 'tap'
import { Readable } from 'node:stream'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../../helpers/build-app.js'
import { errorsCsv, importAndWait, upload, waitDone, type Auth } from './helpers.js'

const UNKNOWN_GROUP = '00000000-0000-4000-8000-00000000abcd'

async function eventsOf(ta: TestApp, importId: string) {
  return ta.app.database.sql.query<{
    identity_value: string
    state: string
    source: string
    actor: string
    method: string | null
    evidence: Record<string, unknown>
    occurred_at: Date
  }>(
    `SELECT identity_value, state, source, actor, method, evidence, occurred_at FROM consent_events
      WHERE actor = $1 ORDER BY (evidence->>'row')::int`,
    [`import:${importId}`],
  )
}

async function check(ta: TestApp, auth: Auth, group: string, phones: string[]) {
  const r = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: auth, payload: { subscription_group_id: group, phones } })
  return (r.json().results as { identifier: string; state: string; allowed: boolean }[]).map((x) => `${x.identifier}:${x.state}`)
}

/** A person-initiated opt-out (as a WhatsApp STOP would record it). */
async function personOptOut(ta: TestApp, workspaceId: string, group: string, phone: string, at: string) {
  const [r] = await ta.app.ledger.append(ta.app.database.sql, { workspaceId, actor: 'meta-webhook' }, [
    { identities: [{ type: 'phone', value: phone }], subscriptionGroupId: group, state: 'unsubscribed', source: 'inbound_keyword', occurredAt: at },
  ])
  if (r!.status !== 'applied') throw new Error(JSON.stringify(r))
}

t.test('a file of valid and invalid rows: the valid ones apply, the exact error report lists the rest', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const G = await newGroup(ta, ws.auth)
  const archived = await newGroup(ta, ws.auth, { name: 'Old' })
  await ta.app.inject({ method: 'POST', url: `/subscription-groups/${archived}/archive`, headers: ws.auth })
  await personOptOut(ta, ws.id, G, '+14155550099', '2024-06-01T00:00:00Z')

  const csv = [
    'phone,external_id,subscription_group_id,subscription_state,occurred_at,method,consent_text',
    `+14155550001,,${G},subscribed,2025-01-01T10:00:00Z,web_form,Yes`, // 2 applied
    `+1415,,${G},subscribed,,,`, // 3 invalid phone
    `+14155550003,,${UNKNOWN_GROUP},subscribed,,,`, // 4 unknown group
    `+14155550004,,${archived},subscribed,,,`, // 5 archived group
    `+14155550005,,${G},maybe,,,`, // 6 bad state
    `,,${G},subscribed,,,`, // 7 no identifier
    `+14155550007,,${G},subscribed,2999-01-01T00:00:00Z,,`, // 8 in the future
    `+1 415 555 0001,,${G},subscribed,2025-01-01T10:00:00.000Z,web_form,Yes`, // 9 repeats row 2
    `+14155550010,,${G},unsubscribed,2025-01-02T00:00:00Z,carrier_pigeon,`, // 10 bad method
    `+14155550011,,${G},subscribed,not-a-date,,`, // 11 bad time
    `+14155550099,,${G},subscribed,2025-01-01T00:00:00Z,,`, // 12 overrides a person's opt-out without evidence
    `+14155550013,u-13,${G},subscribed,,paper,signed form`, // 13 applied
    ``, // 14 blank: skipped
    `+14155550015,,${G},subscribed,,,,extra`, // 15 too many fields
  ].join('\n')

  const posted = await upload(ta, ws.auth, csv, '?source_label=spring-fair')
  t.equal(posted.statusCode, 202, posted.body)
  const { id } = posted.json()
  t.equal(posted.headers.location, `/imports/${id}`)
  t.match(posted.json(), { id, status: 'queued', rows_total: 13 })

  const done = await waitDone(ta, ws.auth, id)
  t.match(done, {
    id,
    status: 'completed',
    source_label: 'spring-fair',
    rows_total: 13,
    rows_processed: 13,
    rows_applied: 2,
    rows_rejected: 10,
    rows_duplicate: 1,
    error: null,
  })
  t.ok(done.started_at && done.finished_at && done.duration_ms >= 0, 'timings')

  const report = await errorsCsv(ta, ws.auth, id)
  t.equal(
    report,
    [
      'row,column,code,message',
      '3,phone,invalid_phone,"phone ""+1415"" is not a valid phone number"',
      `4,subscription_group_id,unknown_subscription_group,subscription group ${UNKNOWN_GROUP} does not exist`,
      `5,subscription_group_id,archived_subscription_group,subscription group ${archived} is archived`,
      '6,subscription_state,invalid_state,"state must be ""subscribed"" or ""unsubscribed"""',
      '7,,missing_identity,"one of external_id, phone or bsuid is required"',
      '8,occurred_at,occurred_at_in_future,occurred_at is more than 5 minutes in the future',
      '9,,duplicate,repeats row 2',
      '10,method,invalid_method,"method must be one of web_form, checkout, sms, whatsapp, ivr, paper, pos, qr_code, email, other"',
      '11,occurred_at,invalid_occurred_at,occurred_at must be an RFC 3339 date-time',
      '12,,evidence_required,"the person opted out themselves; an opt-in that overrides it needs `method` and one of evidence.consent_text, document_ref, page_url or ip"',
      '15,,too_many_fields,"row has 8 fields, the header has 7"',
      '',
    ].join('\n'),
  )

  // Every event carries the import id and its row; the ledger's exactly-once key is per row.
  const events = await eventsOf(ta, id)
  t.same(
    events.map((e) => [e.identity_value, e.state, e.source, e.method, e.evidence]),
    [
      ['+14155550001', 'subscribed', 'csv_import', 'web_form', { import_id: id, row: 2, source_label: 'spring-fair', consent_text: 'Yes' }],
      ['u-13', 'subscribed', 'csv_import', 'paper', { import_id: id, row: 13, source_label: 'spring-fair', consent_text: 'signed form' }],
    ],
  )
  const keys = await ta.app.database.sql.query<{ key: string }>(`SELECT key FROM ledger_dedupe WHERE key LIKE $1 ORDER BY key`, [`import:${id}:%`])
  t.same(
    keys.map((k) => k.key),
    [`import:${id}:13`, `import:${id}:2`],
  )
  // Staging is deleted once the import has finished.
  for (const until = Date.now() + 60_000; Date.now() < until; ) {
    const [s] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM import_rows WHERE import_id = $1`, [id])
    if (s!.n === 0) break
    await new Promise((r) => setTimeout(r, 50))
  }
  const [left] = await ta.app.database.sql.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM import_rows WHERE import_id = $1`, [id])
  t.same(left, { rows: 0 }, 'staging rows are purged')
})

t.test('Idempotency-Key: the same file again answers the same import and stores nothing', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const csv = `phone,subscription_state\n+14155551001,subscribed\n+14155551002,unsubscribed\n`
  const q = `?subscription_group_id=${G}`
  const first = await upload(ta, ta.root, csv, q, { 'idempotency-key': 'file-2025-03' })
  t.equal(first.statusCode, 202, first.body)
  const id = first.json().id
  await waitDone(ta, ta.root, id)

  const again = await upload(ta, ta.root, csv, q, { 'idempotency-key': 'file-2025-03' })
  t.equal(again.statusCode, 202)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.headers.location, `/imports/${id}`)
  t.same(again.json(), { id, status: 'completed', rows_total: 2 }, 'the same import, as it is now')

  const other = await upload(ta, ta.root, csv.replace('1002', '1003'), q, { 'idempotency-key': 'file-2025-03' })
  t.equal(other.statusCode, 422)
  t.equal(other.json().code, 'idempotency_key_reused')
  const otherDefaults = await upload(ta, ta.root, csv, `${q}&source_label=x`, { 'idempotency-key': 'file-2025-03' })
  t.equal(otherDefaults.statusCode, 422, 'other query parameters with the key: 422')

  const [n] = await ta.app.database.sql.query<{ imports: number; events: number }>(
    `SELECT (SELECT count(*)::int FROM imports) AS imports, (SELECT count(*)::int FROM consent_events WHERE source = 'csv_import') AS events`,
  )
  t.same(n, { imports: 1, events: 2 }, 'exactly one import, applied once')
  const list = await ta.app.inject({ url: '/imports', headers: ta.root })
  t.equal(list.json().imports.length, 1)
})

t.test('Idempotency-Key: a second upload while the first is still streaming answers 409', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const slow = Readable.from(
    (async function* () {
      yield Buffer.from(`phone,subscription_state\n+14155551001,subscribed\n`)
      await gate
      yield Buffer.from(`+14155551002,subscribed\n`)
    })(),
  )
  const q = `?subscription_group_id=${G}`
  const firstP = upload(ta, ta.root, slow, q, { 'idempotency-key': 'k-409' })
  // The first upload holds the key's lock once it streams. pg_locks is cluster-wide and other test
  // files run beside this one on their own databases, so only this database's locks count.
  let held = false
  for (const until = Date.now() + 60_000; Date.now() < until && !held; ) {
    const [l] = await ta.app.database.sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks
        WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    )
    held = l!.n > 0
    if (!held) await new Promise((r) => setTimeout(r, 25))
  }
  t.ok(held, 'the first upload holds the key while it streams')
  const second = await upload(ta, ta.root, 'phone,subscription_state\n+14155551001,subscribed\n', q, { 'idempotency-key': 'k-409' })
  t.equal(second.statusCode, 409)
  t.equal(second.json().code, 'idempotency_in_flight')
  release()
  const first = await firstP
  t.equal(first.statusCode, 202, first.body)
  t.equal(first.json().rows_total, 2)
})

t.test('UTF-8 BOM, header case, quoted fields with commas, quotes and newlines', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const csv = Buffer.from(
    `\uFEFFPHONE,Subscription_Group_ID,SUBSCRIPTION_STATE,Method,Consent_Text\r\n` +
      `"+14155552001",${G},subscribed,web_form,"Yes, I agree to ""offers""\nline two"\r\n`,
    'utf8',
  )
  const done = await importAndWait(ta, ta.root, csv)
  t.match(done, { status: 'completed', rows_applied: 1, rows_rejected: 0, columns: ['PHONE', 'Subscription_Group_ID', 'SUBSCRIPTION_STATE', 'Method', 'Consent_Text'] })
  const [e] = await eventsOf(ta, done.id)
  t.equal(e!.identity_value, '+14155552001')
  t.equal(e!.evidence.consent_text, 'Yes, I agree to "offers"\nline two')
})

t.test('unknown columns become contact attributes; defaults and source_label come from the query', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const csv = `phone,First Name,tier,consent_text\n+14155553001,Ann,gold,ok\n+14155553002,,silver,ok\n`
  const done = await importAndWait(ta, ta.root, csv, `?subscription_group_id=${G}&subscription_state=subscribed&source_label=pos`)
  t.match(done, { status: 'completed', rows_applied: 2, subscription_group_id: G, subscription_state: 'subscribed', source_label: 'pos' })
  const list = await ta.app.inject({ url: '/contacts?q=4155553', headers: ta.root })
  const byPhone = Object.fromEntries(
    (list.json().contacts as { identities: { value: string }[]; attributes: unknown }[]).map((c) => [c.identities[0]!.value, c.attributes]),
  )
  t.same(byPhone, { '+14155553001': { 'First Name': 'Ann', tier: 'gold' }, '+14155553002': { tier: 'silver' } }, 'an empty cell sets nothing')
  const events = await eventsOf(ta, done.id)
  t.same(
    events.map((e) => [e.state, e.actor, e.evidence]),
    [
      ['subscribed', `import:${done.id}`, { import_id: done.id, row: 2, source_label: 'pos', consent_text: 'ok' }],
      ['subscribed', `import:${done.id}`, { import_id: done.id, row: 3, source_label: 'pos', consent_text: 'ok' }],
    ],
  )
  t.equal(new Date(events[0]!.occurred_at).toISOString(), done.created_at, 'no occurred_at: the upload time')
})

t.test('ordering rule: old consents never override newer opt-outs; a person\'s opt-out needs evidence', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const G = await newGroup(ta, ws.auth)
  // API opt-outs: one newer than the imported consent, one older.
  const api = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ws.auth,
    payload: {
      events: [
        { phone: '+14155554001', subscription_group_id: G, state: 'unsubscribed', occurred_at: '2025-06-01T00:00:00Z' },
        { phone: '+14155554002', subscription_group_id: G, state: 'unsubscribed', occurred_at: '2024-01-01T00:00:00Z' },
      ],
    },
  })
  t.equal(api.json().applied, 2)
  await personOptOut(ta, ws.id, G, '+14155554003', '2025-01-01T00:00:00Z')
  await personOptOut(ta, ws.id, G, '+14155554004', '2025-01-01T00:00:00Z')

  const csv = [
    'phone,subscription_group_id,subscription_state,occurred_at,method,consent_text',
    `+14155554001,${G},subscribed,2025-01-01T00:00:00Z,paper,signed`, // older than the opt-out: recorded, does not win
    `+14155554002,${G},subscribed,2025-01-01T00:00:00Z,paper,signed`, // newer: wins
    `+14155554003,${G},subscribed,2025-02-01T00:00:00Z,,`, // person opted out: no evidence, refused
    `+14155554004,${G},subscribed,2025-02-01T00:00:00Z,paper,signed at the counter`, // with evidence: wins
  ].join('\n')
  const done = await importAndWait(ta, ws.auth, csv)
  t.match(done, { rows_applied: 3, rows_rejected: 1 })
  t.match(await errorsCsv(ta, ws.auth, done.id), /^row,column,code,message\n4,,evidence_required,/)
  t.same(await check(ta, ws.auth, G, ['+14155554001', '+14155554002', '+14155554003', '+14155554004']), [
    '+14155554001:unsubscribed',
    '+14155554002:subscribed',
    '+14155554003:unsubscribed',
    '+14155554004:subscribed',
  ])
})

t.test('imports of another workspace do not exist; list, read and errors are scoped', async (t) => {
  const ta = await buildTestApp(t)
  const a = await newWorkspace(ta, 'a')
  const b = await newWorkspace(ta, 'b')
  const G = await newGroup(ta, a.auth)
  const done = await importAndWait(ta, a.auth, `phone,subscription_state\n+14155555001,subscribed\n`, `?subscription_group_id=${G}`)
  for (const url of [`/imports/${done.id}`, `/imports/${done.id}/errors`, '/imports/not-a-uuid', `/imports/${UNKNOWN_GROUP}`]) {
    const r = await ta.app.inject({ url, headers: b.auth })
    t.equal(r.statusCode, 404, url)
    t.equal(r.json().code, 'not_found')
  }
  t.same((await ta.app.inject({ url: '/imports', headers: b.auth })).json(), { imports: [], next_cursor: null })
  // Workspace b cannot name a's group as its default either.
  const r = await upload(ta, b.auth, 'phone,subscription_state\n+14155555001,subscribed\n', `?subscription_group_id=${G}`)
  t.equal(r.statusCode, 422)
  t.equal(r.json().code, 'unknown_subscription_group')
})

t.test('GET /imports lists newest first with keyset pages', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const ids: string[] = []
  for (let i = 0; i < 3; i++) ids.push((await importAndWait(ta, ta.root, `phone,subscription_state\n+1415555600${i},subscribed\n`, `?subscription_group_id=${G}`)).id)
  const p1 = (await ta.app.inject({ url: '/imports?limit=2', headers: ta.root })).json()
  t.same(p1.imports.map((i: { id: string }) => i.id), [ids[2], ids[1]])
  t.type(p1.next_cursor, 'string')
  const p2 = (await ta.app.inject({ url: `/imports?limit=2&cursor=${p1.next_cursor}`, headers: ta.root })).json()
  t.same(p2.imports.map((i: { id: string }) => i.id), [ids[0]])
  t.equal(p2.next_cursor, null)
  t.equal((await ta.app.inject({ url: '/imports?status=queued', headers: ta.root })).json().imports.length, 0)
  t.equal((await ta.app.inject({ url: '/imports?cursor=bogus', headers: ta.root })).statusCode, 400)
})

t.test('uploads that cannot be imported are refused whole and store nothing', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const readOnly = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'ro', scopes: ['consent:read'] } })
  const cases: [string, Parameters<typeof upload>, number, string][] = [
    ['no identifier column', [ta, ta.root, `name,subscription_group_id,subscription_state\nx,${G},subscribed\n`], 400, 'invalid_header'],
    ['unclosed quote', [ta, ta.root, `phone,subscription_group_id,subscription_state\n"+14155557001,${G},subscribed\n`], 400, 'malformed_csv'],
    ['empty body', [ta, ta.root, ''], 400, 'empty_file'],
    ['bad default state', [ta, ta.root, 'phone\n+14155557001\n', `?subscription_group_id=${G}&subscription_state=maybe`], 400, 'validation_failed'],
    ['unknown default group', [ta, ta.root, 'phone,subscription_state\n+14155557001,subscribed\n', `?subscription_group_id=${UNKNOWN_GROUP}`], 422, 'unknown_subscription_group'],
    ['JSON', [ta, ta.root, '{"a":1}', '', { 'content-type': 'application/json' }], 415, 'unsupported_media_type'],
    ['text/plain', [ta, ta.root, 'phone\n', '', { 'content-type': 'text/plain' }], 415, 'unsupported_media_type'],
    ['no key', [ta, {} as { authorization: string }, 'phone\n'], 401, 'unauthorized'],
    ['read-only key', [ta, { authorization: `Bearer ${readOnly.json().key}` }, 'phone\n'], 403, 'forbidden'],
    ['declared too large', [ta, ta.root, 'phone\n', '', { 'content-length': String(2 * 1024 ** 3) }], 413, 'body_too_large'],
  ]
  for (const [name, args, status, code] of cases) {
    const r = await upload(...args)
    t.equal(r.statusCode, status, `${name}: ${r.body}`)
    t.equal(r.json().code, code, name)
    t.match(r.headers['content-type'], /application\/problem\+json/, name)
  }
  const [n] = await ta.app.database.sql.query<{ imports: number; rows: number }>(
    `SELECT (SELECT count(*)::int FROM imports) AS imports, (SELECT count(*)::int FROM import_rows) AS rows`,
  )
  t.same(n, { imports: 0, rows: 0 })
})

t.test('a long error report streams every line in row order', async (t) => {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root)
  const lines = ['phone,subscription_state']
  for (let i = 0; i < 25_000; i++) lines.push(i % 5000 === 0 ? `+1415555${String(i / 5000).padStart(4, '0')},subscribed` : `+1${i},subscribed`)
  const done = await importAndWait(ta, ta.root, `${lines.join('\n')}\n`, `?subscription_group_id=${G}`)
  t.match(done, { status: 'completed', rows_applied: 5, rows_rejected: 24_995 })
  const report = (await errorsCsv(ta, ta.root, done.id)).trimEnd().split('\n')
  t.equal(report.length, 1 + 24_995)
  const rows = report.slice(1).map((l) => Number(l.split(',')[0]))
  t.ok(rows.every((r, i) => i === 0 || r > rows[i - 1]!), 'in row order')
  t.equal(rows[0], 3)
  t.equal(rows[rows.length - 1], 25_001)
})
