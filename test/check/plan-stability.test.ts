/**
 * The check's statements (migration 0015: consent_check_one, consent_check_many) read every table
 * by index whatever its statistics say. As plain prepared statements they kept, per pooled
 * connection, a plan made from the statistics of the moment: platform_stops analyzed while empty
 * gave a sequential scan of it per checked contact, kept while the table grew (measured: a
 * 10,000-phone batch check 0.1 s -> 32-38 s, a single check 2.0 -> 11.1 ms). This test analyzes
 * the tables while platform_stops is empty, fixes the plans, grows the table without a new ANALYZE,
 * and reads the plans then used (auto_explain, nested statements, sent to the client): every table
 * is read by a probe of its key, never scanned whole (sequentially or through an index).
 */
import t from 'tap'
import pg from 'pg'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { buildTestApp, newGroup } from '../helpers/build-app.js'
import { capturePlans } from '../helpers/plans.js'
import { PROJECTION_WRITE } from '../../src/ledger/projection.js'

const phone = (n: number) => `+1415555${String(n).padStart(4, '0')}`

t.test('check functions probe by index after platform_stops grew behind stale statistics', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const g = await newGroup(ta, ta.root)
  await ta.app.ledger.append(sql, { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }, [
    { identities: [{ type: 'phone', value: phone(1) }], subscriptionGroupId: g, state: 'subscribed', source: 'api' },
    { identities: [{ type: 'phone', value: phone(2) }], subscriptionGroupId: g, state: 'unsubscribed', source: 'api' },
  ])
  const [owner] = await sql.query<{ contact_id: string }>(`SELECT contact_id FROM identities WHERE type = 'phone' AND value = $1`, [phone(1)])

  const client = new pg.Client({ connectionString: ta.url })
  await client.connect()
  t.teardown(() => client.end())
  await client.query(`ANALYZE identities, consent_state, platform_stops`)
  const [stats] = (await client.query<{ reltuples: number }>(`SELECT reltuples FROM pg_class WHERE relname = 'platform_stops'`)).rows
  t.equal(Number(stats!.reltuples), 0, 'platform_stops analyzed while empty')

  const plans = await capturePlans(client)
  const one = () => client.query({ name: 'one', text: `SELECT * FROM consent_check_one($1, 'phone', $2, $3::uuid[], true)`, values: [DEFAULT_WORKSPACE_ID, phone(1), [g]] })
  const many = () =>
    client.query({
      name: 'many',
      text: `SELECT * FROM consent_check_many($1, $2::text[], $3::text[], $4::uuid[], true)`,
      values: [DEFAULT_WORKSPACE_ID, ['phone', 'phone', 'phone'], [phone(1), phone(2), phone(3)], [g]],
    })
  // More calls than the five custom plans a prepared statement gets: the plans are fixed now.
  for (let i = 0; i < 8; i++) {
    await one()
    await many()
  }

  // The table grows (a wave of stops), and nothing analyzes it.
  await client.query('BEGIN')
  await client.query(`SELECT set_config('${PROJECTION_WRITE}', 'on', true)`) // as the ledger's write path (migration 0019)
  await client.query(
    `INSERT INTO platform_stops (workspace_id, contact_id, phone_number_id, stopped, occurred_at, event_id)
     SELECT $1, $2, 'PN' || n, n % 2 = 0, now(), gen_random_uuid() FROM generate_series(1, 2000) n`,
    [DEFAULT_WORKSPACE_ID, owner!.contact_id],
  )
  await client.query('COMMIT')
  plans.length = 0
  const single = await one()
  const batch = await many()

  t.equal(single.rows.length, 1)
  t.match(single.rows[0], { g, state: 'subscribed' })
  t.equal(single.rows[0].stopped.length, 1000, 'the single check sees every stopped number')
  t.equal(batch.rows.filter((r) => r.stop !== null).length, 1000, 'the batch check sees every stopped number')
  t.same(
    batch.rows.filter((r) => r.stop === null).map((r) => [r.ord, r.state]),
    [
      [1, 'subscribed'],
      [2, 'unsubscribed'],
    ],
    'states in input order; the unknown phone has no row',
  )

  // The plans of the statements inside the functions (not of the calls themselves).
  const nested = plans.filter((p) => !/Query Text: SELECT \* FROM consent_check_(one|many)/.test(p))
  t.equal(nested.length, 2, 'one nested plan per function call')
  t.ok(nested.every((p) => p.includes('platform_stops')), 'both plans read platform_stops')
  const lines = nested.flatMap((p) => p.split('\n').map((l) => l.trim()))
  t.same(lines.filter((l) => /Seq Scan on (identities|consent_state|platform_stops)\b/.test(l)), [], 'no sequential scan of a table the check reads')
  // Nor an index read whole in its place (what sequential scans off alone gave: a hash join over
  // every identity of the workspace, a nested loop over every stop of it): each probe names its key.
  const conds = lines.filter((l) => l.startsWith('Index Cond:'))
  t.equal(conds.length, 6, 'six key probes: identities, consent_state and platform_stops in each function')
  t.same(conds.filter((l) => !/(value = |contact_id = )/.test(l)), [], 'every probe goes by the identity or the contact, not the workspace alone')
  t.same(lines.filter((l) => /Hash Join|Merge Join|Hash Left Join/.test(l)), [], 'no join that reads a table whole')
})
