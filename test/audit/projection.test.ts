/**
 * The projection the pre-send check reads (consent_state and platform_stops) is guarded and verified:
 * the database refuses writes that do not come from the ledger's own write path; POST /audit/verify
 * compares it with a fold of the ledger by the ordering rule and reports each difference; the
 * rebuild (POST /audit/projection/rebuild, admin) brings it back to the fold and says what changed.
 */
import t from 'tap'
import pg from 'pg'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../helpers/build-app.js'
import { append, keyWith, phoneItem } from './helpers.js'

const PN = 'PN-7001'
const stopItem = (phone: string, group: string, occurredAt: string, action: 'stop' | 'resume' = 'stop') => ({
  identities: [{ type: 'phone' as const, value: phone }],
  subscriptionGroupId: group,
  state: action === 'stop' ? ('unsubscribed' as const) : ('subscribed' as const),
  source: 'meta_user_preferences' as const,
  method: 'whatsapp' as const,
  occurredAt,
  evidence: { phone_number_id: PN, signal_key: `wa:pref:${phone}:${action}:${occurredAt}` },
  platformStop: { action, phoneNumberId: PN },
})

async function contactOf(ta: TestApp, ws: string, type: string, value: string): Promise<string> {
  const [r] = await ta.app.database.sql.query<{ contact_id: string }>(`SELECT contact_id FROM identities WHERE workspace_id = $1 AND type = $2 AND value = $3`, [ws, type, value])
  return r!.contact_id
}

t.test('the projection and the platform stops refuse writes outside the ledger; the ledger still writes them', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])

  // Every writer of the projection: new contacts, existing ones (upsert), platform stops, a merge.
  await append(ta, ws.id, [phoneItem('+14155557001', g, 'subscribed'), stopItem('+14155557002', g, '2026-01-02T00:00:00Z')])
  await append(ta, ws.id, [phoneItem('+14155557001', g, 'unsubscribed'), stopItem('+14155557002', g, '2026-01-03T00:00:00Z', 'resume')])
  await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'u-7003' }], subscriptionGroupId: g, state: 'subscribed', source: 'api', occurredAt: '2026-01-01T00:00:00Z' }])
  await append(ta, ws.id, [{ identities: [{ type: 'external_id', value: 'u-7003' }, { type: 'phone', value: '+14155557002' }], identifyOnly: true, source: 'users_track' }])
  const merged = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts WHERE workspace_id = $1 AND merged_into IS NOT NULL`, [ws.id])
  t.equal(merged[0]!.n, 1, 'the phone-only contact was merged into the one with the external_id')
  const survivor = await contactOf(ta, ws.id, 'external_id', 'u-7003')
  const stops = await sql.query<{ contact_id: string; stopped: boolean }>(`SELECT contact_id, stopped FROM platform_stops WHERE workspace_id = $1`, [ws.id])
  t.same(stops, [{ contact_id: survivor, stopped: false }], 'the merge moved the (resumed) platform stop to the survivor')
  const clean = (await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: auditor })).json()
  t.match(clean, { ok: true, projection: { difference_count: 0, differences: [] } }, 'what the ledger wrote is its fold')

  const c1 = await contactOf(ta, ws.id, 'phone', '+14155557001')
  const snapshot = async () => ({
    state: await sql.query(`SELECT * FROM consent_state WHERE workspace_id = $1 ORDER BY contact_id, subscription_group_id`, [ws.id]),
    stops: await sql.query(`SELECT * FROM platform_stops WHERE workspace_id = $1 ORDER BY contact_id, phone_number_id`, [ws.id]),
  })
  const before = await snapshot()
  const refused = { code: 'P0001', message: /projection of the ledger/ }
  await t.rejects(sql.query(`UPDATE consent_state SET state = 'subscribed' WHERE workspace_id = $1 AND contact_id = $2`, [ws.id, c1]), refused, 'UPDATE consent_state')
  await t.rejects(sql.query(`DELETE FROM consent_state WHERE workspace_id = $1`, [ws.id]), refused, 'DELETE FROM consent_state')
  await t.rejects(
    sql.query(
      `INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
       VALUES ($1, $2, $3, 'subscribed', now(), 1, gen_random_uuid(), 'api')`,
      [ws.id, survivor, g],
    ),
    refused,
    'INSERT INTO consent_state',
  )
  await t.rejects(sql.query(`TRUNCATE consent_state`), refused, 'TRUNCATE consent_state')
  await t.rejects(sql.query(`UPDATE platform_stops SET stopped = true WHERE workspace_id = $1`, [ws.id]), refused, 'UPDATE platform_stops')
  await t.rejects(sql.query(`DELETE FROM platform_stops WHERE workspace_id = $1`, [ws.id]), refused, 'DELETE FROM platform_stops')
  await t.rejects(
    sql.query(`INSERT INTO platform_stops (workspace_id, contact_id, phone_number_id, stopped, occurred_at, event_id) VALUES ($1, $2, 'PN-X', true, now(), gen_random_uuid())`, [ws.id, c1]),
    refused,
    'INSERT INTO platform_stops',
  )
  await t.rejects(sql.query(`TRUNCATE platform_stops`), refused, 'TRUNCATE platform_stops')
  t.same(await snapshot(), before, 'nothing changed')
})

t.test('verify reports a tampered projection and platform stop; the rebuild repairs them', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const g2 = await newGroup(ta, ws.auth, { name: 'alerts', category: 'utility' })
  const auditor = await keyWith(ta, ws.auth, ['audit:read'])
  const reader = await keyWith(ta, ws.auth, ['consent:read'])

  const P = ['+14155557101', '+14155557102', '+14155557103', '+14155557104']
  await append(ta, ws.id, [
    phoneItem(P[0]!, g, 'subscribed', { occurredAt: '2026-01-01T00:00:00Z' }),
    phoneItem(P[1]!, g, 'subscribed'),
    phoneItem(P[1]!, g2, 'subscribed'),
    phoneItem(P[2]!, g, 'subscribed', { occurredAt: '2026-01-01T00:00:00Z' }),
    phoneItem(P[3]!, g, 'subscribed', { occurredAt: '2026-01-01T00:00:00Z' }),
  ])
  await append(ta, ws.id, [
    phoneItem(P[0]!, g, 'unsubscribed', { occurredAt: '2026-01-02T00:00:00Z' }),
    stopItem(P[2]!, g, '2026-01-02T00:00:00Z'),
    phoneItem(P[3]!, g, 'subscribed', { occurredAt: '2026-01-02T00:00:00Z' }),
  ])
  // The person opts in again by keyword: subscribed, yet Meta's stop still holds.
  await append(ta, ws.id, [phoneItem(P[2]!, g, 'subscribed', { source: 'inbound_keyword', occurredAt: '2026-01-03T00:00:00Z' })])
  const [c0, c1, c2, c3] = await Promise.all(P.map((p) => contactOf(ta, ws.id, 'phone', p)))
  const check = async (phone: string) => {
    const r = await ta.app.inject({ method: 'POST', url: '/consent/check', headers: reader, payload: { subscription_group_id: g, phones: [phone] } })
    t.equal(r.statusCode, 200, r.body)
    return r.json().results[0] as { allowed: boolean; reason: string; state: string }
  }
  const verify = async () => {
    const r = await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: auditor })
    t.equal(r.statusCode, 200, r.body)
    return r.json()
  }
  t.match(await check(P[0]!), { allowed: false, reason: 'opted_out' })
  t.match(await check(P[2]!), { allowed: false, state: 'subscribed', reason: 'platform_stopped' })
  t.match(await verify(), { ok: true, projection: { difference_count: 0 } })

  const events = async (contact: string) =>
    sql.query<{ id: string; event_id: string; occurred_at: Date }>(
      `SELECT id::text AS id, event_id, occurred_at FROM consent_events WHERE workspace_id = $1 AND contact_id = $2 ORDER BY consent_events.id`,
      [ws.id, contact],
    )
  const [first3] = await events(c3!)
  const stopEvent = (await events(c2!))[1]!

  // ---- Tampering, as the superuser, with the guard disabled. ----
  const db = new pg.Client({ connectionString: ta.url })
  await db.connect()
  t.teardown(() => db.end())
  await t.rejects(db.query(`UPDATE consent_state SET state = 'subscribed' WHERE workspace_id = $1`, [ws.id]), /projection of the ledger/, 'the guard refuses the superuser too')
  await db.query('ALTER TABLE consent_state DISABLE TRIGGER USER')
  await db.query('ALTER TABLE platform_stops DISABLE TRIGGER USER')
  await db.query(`UPDATE consent_state SET state = 'subscribed' WHERE workspace_id = $1 AND contact_id = $2 AND subscription_group_id = $3`, [ws.id, c0, g])
  await db.query(`DELETE FROM consent_state WHERE workspace_id = $1 AND contact_id = $2 AND subscription_group_id = $3`, [ws.id, c1, g2])
  await db.query(
    `INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
     VALUES ($1, $2, $3, 'subscribed', now(), 1, gen_random_uuid(), 'api')`,
    [ws.id, c0, g2],
  )
  await db.query(`UPDATE consent_state SET event_seq = $4, event_id = $5, occurred_at = $6 WHERE workspace_id = $1 AND contact_id = $2 AND subscription_group_id = $3`, [
    ws.id,
    c3,
    g,
    first3!.id,
    first3!.event_id,
    first3!.occurred_at,
  ])
  await db.query(`DELETE FROM platform_stops WHERE workspace_id = $1 AND contact_id = $2`, [ws.id, c2])
  await db.query('ALTER TABLE consent_state ENABLE TRIGGER USER')
  await db.query('ALTER TABLE platform_stops ENABLE TRIGGER USER')
  t.match(await check(P[0]!), { allowed: true }, 'the tampered projection turned an opt-out into an allowed send')
  t.match(await check(P[2]!), { allowed: true }, 'and removed a platform stop')

  const report = await verify()
  t.equal(report.ok, false, 'verify: not ok')
  t.equal(report.broken_count, 0, 'the chains themselves are intact')
  const key = (d: { table: string; kind: string; contact_id: string; subscription_group_id: string | null; phone_number_id: string | null }) =>
    `${d.table} ${d.kind} ${d.contact_id} ${d.subscription_group_id ?? d.phone_number_id}`
  const expected = [
    `consent_state wrong_state ${c0} ${g}`,
    `consent_state extra ${c0} ${g2}`,
    `consent_state missing ${c1} ${g2}`,
    `consent_state wrong_winner ${c3} ${g}`,
    `platform_stops missing ${c2} ${PN}`,
  ].sort()
  t.same(report.projection.differences.map(key).sort(), expected, 'each difference, and nothing else')
  t.equal(report.projection.difference_count, 5)
  const byKey = new Map<string, Record<string, unknown>>(report.projection.differences.map((d: never) => [key(d), d]))
  t.match(byKey.get(`consent_state wrong_state ${c0} ${g}`), { expected: { state: 'unsubscribed' }, found: { state: 'subscribed' } })
  t.match(byKey.get(`consent_state extra ${c0} ${g2}`), { expected: null, found: { state: 'subscribed' } })
  t.match(byKey.get(`consent_state missing ${c1} ${g2}`), { expected: { state: 'subscribed' }, found: null })
  const ww = byKey.get(`consent_state wrong_winner ${c3} ${g}`) as { expected: { event_id: string }; found: { event_id: string } }
  t.equal(ww.found.event_id, first3!.event_id, 'wrong winner: the older event')
  t.not(ww.expected.event_id, first3!.event_id)
  t.match(byKey.get(`platform_stops missing ${c2} ${PN}`), { expected: { stopped: true, event_id: stopEvent.event_id }, found: null })

  // ---- Repair. ----
  const denied = await ta.app.inject({ method: 'POST', url: '/audit/projection/rebuild', headers: auditor })
  t.equal(denied.statusCode, 403, 'an auditor cannot rebuild')
  const rebuilt = await ta.app.inject({ method: 'POST', url: '/audit/projection/rebuild', headers: ws.auth })
  t.equal(rebuilt.statusCode, 200, rebuilt.body)
  const r = rebuilt.json()
  t.same(r.differences.map(key).sort(), expected, 'the rebuild says what it changed')
  t.match(r, { workspace_id: ws.id, difference_count: 5, changed: { consent_state: { written: 3, deleted: 1 }, platform_stops: { written: 1, deleted: 0 } } })
  t.match(await verify(), { ok: true, projection: { difference_count: 0, differences: [] } }, 'verify: ok again')
  t.match(await check(P[0]!), { allowed: false, reason: 'opted_out' }, "the check answers the ledger's truth again")
  t.match(await check(P[2]!), { allowed: false, reason: 'platform_stopped' })
  const again = (await ta.app.inject({ method: 'POST', url: '/audit/projection/rebuild', headers: ws.auth })).json()
  t.match(again, { difference_count: 0, differences: [], changed: { consent_state: { written: 0, deleted: 0 }, platform_stops: { written: 0, deleted: 0 } } }, 'a second rebuild changes nothing')
  const other = await newWorkspace(ta, 'other')
  t.match((await ta.app.inject({ method: 'POST', url: '/audit/projection/rebuild', headers: other.auth })).json(), { workspace_id: other.id, difference_count: 0 })
})
