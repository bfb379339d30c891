/**
 * Migration 0008 replaced the per-row foreign keys of consent_events, identities and consent_state
 * with set-based statement triggers. The database must still refuse, whatever the application
 * does: a row naming a contact (or group) that does not exist in its workspace (SQLSTATE 23503, on
 * INSERT and on UPDATE), and any way of making an existing reference dangle (deleting, truncating
 * or re-keying a contact or a group).
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'
import { allowProjectionWrite } from '../../src/ledger/projection.js'

t.test('references to contacts and groups are enforced by the database', async (t) => {
  const ta = await buildTestApp(t)
  const group = await newGroup(ta, ta.root)
  const r = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ta.root,
    payload: { events: [{ external_id: 'u1', subscription_group_id: group, state: 'subscribed' }] },
  })
  t.equal(r.statusCode, 200, r.body)
  const { sql } = ta.app.database
  const [ev] = await sql.query<{ workspace_id: string; contact_id: string }>(`SELECT workspace_id, contact_id FROM consent_events LIMIT 1`)
  const ws = ev!.workspace_id
  const contact = ev!.contact_id
  const other = await newWorkspace(ta, 'other')
  const otherGroup = await newGroup(ta, other.auth)
  const [otherContact] = await sql.query<{ id: string }>(`INSERT INTO contacts (workspace_id) VALUES ($1) RETURNING id`, [other.id])
  const ghost = randomUUID()
  // The projection takes writes only from the ledger's write path (migration 0019): these
  // statements run as that path would, to test the reference checks behind that guard.
  const asLedger = (text: string, values: unknown[]) =>
    sql.tx(async (tx) => {
      await allowProjectionWrite(tx)
      return tx.query(text, values)
    })

  const insertEvent = (contactId: string, groupId: string | null) =>
    sql.query(
      `INSERT INTO consent_events (workspace_id, event_id, contact_id, subscription_group_id, state, occurred_at, recorded_at, source, actor, prev_hash, hash)
       SELECT $1, gen_random_uuid(), x, $3, 'subscribed', now(), now(), 'api', 'test', 'p', 'h' FROM unnest($2::uuid[]) AS x`,
      [ws, [contact, contactId], groupId],
    )
  await t.rejects(insertEvent(ghost, group), { code: '23503', message: /contacts/ }, 'event: unknown contact')
  await t.rejects(insertEvent(otherContact!.id, group), { code: '23503' }, 'event: contact of another workspace')
  await t.rejects(insertEvent(contact, randomUUID()), { code: '23503', message: /subscription_groups/ }, 'event: unknown group')
  await t.rejects(insertEvent(contact, otherGroup), { code: '23503' }, 'event: group of another workspace')
  await insertEvent(contact, null) // identity events carry no group: allowed, as with the FK
  t.pass('an event with existing references and no group is accepted')

  await t.rejects(sql.query(`INSERT INTO identities (workspace_id, type, value, contact_id) VALUES ($1, 'phone', '+14155550199', $2)`, [ws, ghost]), {
    code: '23503',
  }, 'identity: unknown contact')
  await t.rejects(sql.query(`UPDATE identities SET contact_id = $2 WHERE workspace_id = $1`, [ws, ghost]), { code: '23503' }, 'identity moved to an unknown contact')
  await t.rejects(sql.query(`UPDATE identities SET contact_id = $2 WHERE workspace_id = $1`, [ws, otherContact!.id]), { code: '23503' }, 'identity moved across workspaces')

  await t.rejects(
    asLedger(
      `INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
       VALUES ($1, $2, $3, 'subscribed', now(), 1, gen_random_uuid(), 'api')`,
      [ws, ghost, group],
    ),
    { code: '23503' },
    'projection: unknown contact',
  )
  await t.rejects(asLedger(`UPDATE consent_state SET contact_id = $2 WHERE workspace_id = $1`, [ws, ghost]), { code: '23503' }, 'projection row moved to an unknown contact')
  // Migration 0009: the UPDATE checks are row triggers on contact_id and workspace_id (not fired by a
  // projection upsert that changes neither); moving a row to another workspace is still refused.
  await t.rejects(asLedger(`UPDATE consent_state SET workspace_id = $2 WHERE workspace_id = $1`, [ws, other.id]), { code: '23503' }, 'projection row moved across workspaces')
  await t.rejects(sql.query(`UPDATE identities SET workspace_id = $2 WHERE workspace_id = $1`, [ws, other.id]), { code: '23503' }, 'identity moved across workspaces by its workspace')
  await asLedger(
    `INSERT INTO consent_state AS s (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
     VALUES ($1, $2, $3, 'unsubscribed', now(), 2, gen_random_uuid(), 'api')
     ON CONFLICT (workspace_id, contact_id, subscription_group_id) DO UPDATE SET state = excluded.state`,
    [ws, contact, group],
  )
  const [st] = await sql.query<{ state: string }>(`SELECT state FROM consent_state WHERE workspace_id = $1 AND contact_id = $2 AND subscription_group_id = $3`, [ws, contact, group])
  t.equal(st!.state, 'unsubscribed', 'a projection upsert of an existing contact is accepted (it updates)')

  // The referenced side cannot go away or change key.
  await t.rejects(sql.query(`DELETE FROM contacts WHERE workspace_id = $1`, [ws]), { code: 'P0001' }, 'contacts cannot be deleted')
  await t.rejects(sql.query(`TRUNCATE contacts CASCADE`), { code: 'P0001' }, 'contacts cannot be truncated')
  await t.rejects(sql.query(`UPDATE contacts SET id = gen_random_uuid() WHERE id = $1`, [contact]), { code: 'P0001' }, 'a contact cannot be re-keyed')
  await t.rejects(sql.query(`UPDATE contacts SET workspace_id = $2 WHERE id = $1`, [contact, other.id]), { code: 'P0001' }, 'nor moved to another workspace')
  await t.rejects(sql.query(`UPDATE subscription_groups SET id = gen_random_uuid() WHERE id = $1`, [group]), { code: 'P0001' }, 'a group cannot be re-keyed')
  await sql.query(`UPDATE contacts SET attributes = '{"a":"b"}' WHERE id = $1`, [contact])
  t.pass('ordinary contact updates still work')

  const [n] = await sql.query<{ events: number; identities: number; dangling: number }>(
    `SELECT (SELECT count(*)::int FROM consent_events) AS events, (SELECT count(*)::int FROM identities) AS identities,
            (SELECT count(*)::int FROM consent_events e WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = e.workspace_id AND c.id = e.contact_id)) AS dangling`,
  )
  t.same(n, { events: 3, identities: 1, dangling: 0 }, 'only the valid rows were written')
})

t.test('contacts name an existing workspace, and a workspace with contacts stays (migration 0012)', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const empty = await newWorkspace(ta, 'empty')
  const used = await newWorkspace(ta, 'used')
  const ghost = randomUUID()
  await t.rejects(
    sql.query(`INSERT INTO contacts (workspace_id) SELECT unnest($1::uuid[])`, [[used.id, ghost]]),
    { code: '23503', message: /workspaces/ },
    'one contact of an unknown workspace fails the whole statement',
  )
  const [c] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts WHERE workspace_id = $1`, [used.id])
  t.equal(c!.n, 0, 'nothing of the failed statement stayed')
  await sql.query(`INSERT INTO contacts (workspace_id) SELECT $1::uuid FROM generate_series(1, 3)`, [used.id])

  await t.rejects(sql.query(`DELETE FROM workspaces WHERE id = $1`, [used.id]), { code: '23503', message: /reference from "contacts"/ }, 'a workspace with contacts cannot be deleted')
  await t.rejects(sql.query(`UPDATE workspaces SET id = gen_random_uuid() WHERE id = $1`, [used.id]), { code: '23503' }, 'nor re-keyed')
  await sql.query(`UPDATE workspaces SET name = 'renamed' WHERE id = $1`, [used.id])
  t.pass('other workspace updates still work')

  // A contact inserted by a transaction still open: the DELETE of its workspace waits for it
  // (the FOR KEY SHARE lock of the check), then finds the contact and fails.
  // (Without its API key and settings, nothing else references the workspace: a control shows
  // such a workspace can be deleted, so what refuses below is the contact.)
  const spare = await newWorkspace(ta, 'spare')
  for (const id of [empty.id, spare.id]) {
    await sql.query(`DELETE FROM api_keys WHERE workspace_id = $1`, [id])
    await sql.query(`DELETE FROM workspace_settings WHERE workspace_id = $1`, [id])
  }
  await sql.query(`DELETE FROM workspaces WHERE id = $1`, [spare.id])
  t.pass('a workspace nothing references can be deleted')
  const a = new pg.Client({ connectionString: ta.url })
  const b = new pg.Client({ connectionString: ta.url })
  await a.connect()
  await b.connect()
  t.teardown(() => Promise.all([a.end(), b.end()]))
  await a.query('BEGIN')
  await a.query(`INSERT INTO contacts (workspace_id) VALUES ($1)`, [empty.id])
  let settled = false
  const del = b.query(`DELETE FROM workspaces WHERE id = $1`, [empty.id]).finally(() => (settled = true))
  del.catch(() => {})
  await new Promise((r) => setTimeout(r, 300))
  t.notOk(settled, 'the DELETE waits for the inserting transaction')
  await a.query('COMMIT')
  await t.rejects(del, { code: '23503', message: /reference from "contacts"/ }, 'and then fails: the workspace has a contact')
  const [w] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM workspaces WHERE id = $1`, [empty.id])
  t.equal(w!.n, 1, 'the workspace is still there')
})
