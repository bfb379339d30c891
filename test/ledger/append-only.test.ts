import t from 'tap'
import { sql as dsql } from 'drizzle-orm'
import { buildTestApp, newGroup } from '../helpers/build-app.js'

t.test('the ledger refuses UPDATE, DELETE and TRUNCATE through the app\'s own connection', async (t) => {
  const ta = await buildTestApp(t)
  const group = await newGroup(ta, ta.root)
  const r = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: [{ external_id: 'u1', subscription_group_id: group, state: 'subscribed' }] },
  })
  t.equal(r.statusCode, 200, r.body)
  t.equal(r.json().applied, 1)
  const { sql, db } = ta.app.database

  // Raw SQL on the app's pool.
  await t.rejects(sql.query(`UPDATE consent_events SET state = 'unsubscribed'`), { code: 'P0001', message: /append-only/ })
  await t.rejects(sql.query(`DELETE FROM consent_events`), { code: 'P0001' })
  await t.rejects(sql.query(`TRUNCATE consent_events`), { code: 'P0001' })
  await sql.query(`INSERT INTO ledger_dedupe (workspace_id, key) SELECT id, 'k' FROM workspaces LIMIT 1`)
  await t.rejects(sql.query(`UPDATE ledger_dedupe SET key = 'other'`), { code: 'P0001' })
  await t.rejects(sql.query(`DELETE FROM ledger_dedupe`), { code: 'P0001' })
  await t.rejects(sql.query(`TRUNCATE ledger_dedupe`), { code: 'P0001' })
  // Through Drizzle too (the error is wrapped; the PostgreSQL code is in `cause`).
  await t.rejects(db.execute(dsql`DELETE FROM consent_events`), { cause: { code: 'P0001' } })

  const [row] = await sql.query<{ n: number; state: string }>(`SELECT count(*)::int AS n, min(state) AS state FROM consent_events`)
  t.same(row, { n: 1, state: 'subscribed' }, 'the event is intact')
})

t.test('a subscription group cannot be deleted, nor change kind once used', async (t) => {
  const ta = await buildTestApp(t)
  const group = await newGroup(ta, ta.root)
  const { sql } = ta.app.database
  await t.rejects(sql.query(`DELETE FROM subscription_groups`), { code: 'P0001' })
  await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: [{ external_id: 'u1', subscription_group_id: group, state: 'subscribed' }] },
  })
  await t.rejects(sql.query(`UPDATE subscription_groups SET category = 'utility'`), { code: 'CL002' })
  const viaApi = await ta.app.inject({ method: 'PATCH', url: `/subscription-groups/${group}`, headers: ta.root, payload: { category: 'utility' } })
  t.equal(viaApi.statusCode, 409)
  t.equal(viaApi.json().code, 'group_in_use')
  const rename = await ta.app.inject({ method: 'PATCH', url: `/subscription-groups/${group}`, headers: ta.root, payload: { name: 'Promotions' } })
  t.equal(rename.statusCode, 200)
  t.equal(rename.json().name, 'Promotions')
})
