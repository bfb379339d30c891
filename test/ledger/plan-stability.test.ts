/**
 * The ledger's functions keep index probes whatever the table sizes were when their plans were
 * made. PL/pgSQL caches a plan per statement for the life of a connection; a plan made while a
 * table was small (a fresh deployment, a new database) chose a sequential scan, and kept it while
 * the table grew: the webhook bench's processing fell to ~350 payloads/s for 30-80 s (ledger_dedupe
 * probes, ~800 ms per 200-row batch) until autovacuum's ANALYZE invalidated the plans. Migration
 * 0011 turns sequential scans off inside these functions; this test reads their nested plans
 * (auto_explain, sent to the client) right after the tables were analyzed empty. The merge path's
 * reads are plain statements, unnamed so that each call is planned with the tables' current sizes:
 * the second test grows the tables behind stale statistics and reads the plans of a merge.
 */
import t from 'tap'
import pg from 'pg'
import { buildTestApp, newGroup } from '../helpers/build-app.js'
import { capturePlans, collectPlans } from '../helpers/plans.js'
import { poolSql } from '../../src/db/sql.js'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { allowProjectionWrite } from '../../src/ledger/projection.js'

t.test('ledger functions probe by index even on tables analyzed while empty', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const [c] = await ta.app.database.sql.query<{ id: string }>(
    `INSERT INTO contacts (workspace_id, id) VALUES ($1, gen_random_uuid()) RETURNING id`,
    [DEFAULT_WORKSPACE_ID],
  )
  const client = new pg.Client({ connectionString: ta.url })
  await client.connect()
  t.teardown(() => client.end())
  await client.query(`ANALYZE identities, contacts, ledger_dedupe, consent_state, subscription_groups, workspace_settings, webhook_inbox, whatsapp_numbers`)
  const plans = await capturePlans(client)
  // More calls than PL/pgSQL's five custom plans: the cached generic plans are read too.
  for (let i = 0; i < 8; i++) {
    await client.query(
      `SELECT * FROM ledger_prepare($1, $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::uuid[], $8::uuid[], $9::text[], $10::int)`,
      [DEFAULT_WORKSPACE_ID, [g], [`k${i}`], ['phone'], [`+1415555010${i}`], [g], [c!.id], [g], [`key-${i}`], 1],
    )
  }
  // The reference check of new identities (statement trigger), and the webhook row lock.
  for (let i = 0; i < 8; i++) {
    await client.query(`INSERT INTO identities (workspace_id, type, value, contact_id) VALUES ($1, 'external_id', $2, $3)`, [
      DEFAULT_WORKSPACE_ID,
      `plan-${i}`,
      c!.id,
    ])
  }
  const [row] = (
    await client.query<{ id: string }>(
      `INSERT INTO webhook_inbox (raw_body, body_sha256, phone_number_ids, status) VALUES ('{}', 'x', '{}', 'pending') RETURNING id::text`,
    )
  ).rows
  for (let i = 0; i < 8; i++) await client.query(`SELECT * FROM webhook_lock_for_processing($1, false)`, [row!.id])
  // The plans of the statements inside the functions (not of the calls themselves).
  const nested = plans.filter((p) => !/Query Text: (SELECT \* FROM (ledger_prepare|webhook_lock_for_processing)|INSERT INTO identities)/.test(p))
  t.ok(nested.some((p) => p.includes('new_rows')), 'the plans of the reference check were seen')
  t.ok(nested.some((p) => p.includes('webhook_inbox')), 'the plans of the webhook row lock were seen')
  t.ok(nested.some((p) => p.includes('ledger_dedupe')), 'the plans of the exactly-once probe were seen')
  t.ok(nested.some((p) => p.includes('identities')), 'the plans of the owner probe were seen')
  const seq = nested.filter((p) => /Seq Scan on (identities|contacts|ledger_dedupe|consent_state|webhook_inbox|whatsapp_numbers)\b/.test(p))
  t.same(seq.map((p) => p.split('\n').find((l) => l.includes('Seq Scan'))?.trim()), [], 'no sequential scan of a ledger table')

  // Migration 0014: the statements of ledger_prepare and of the webhook row lock are planned once
  // per connection (generic plans, conditions on $n parameters), never again per call with that
  // call's values (a custom plan names the workspace's uuid): the owner probe was planned anew at
  // every call, the largest part of ledger_prepare's time.
  const owner = nested.filter((p) => p.includes('CROSS JOIN LATERAL (SELECT i.contact_id FROM identities i'))
  t.equal(owner.length, 8, 'the owner probe ran once per call')
  const custom = (p: string) => p.includes(`'${DEFAULT_WORKSPACE_ID}'::uuid`)
  t.same(owner.filter(custom).length, 0, 'no call planned the owner probe with its own values')
  t.ok(owner.every((p) => /workspace_id = \$\d+/.test(p)), 'the owner probe plan is on parameters')
  const lock = nested.filter((p) => p.includes('webhook_inbox'))
  t.ok(lock.length >= 8, 'the webhook row lock plans were seen')
  t.same(lock.filter((p) => /Index Cond: \(id = '?\d+/.test(p)).length, 0, 'the webhook row lock is not planned per call')
})

t.test("the merge path's reads are planned with the tables' sizes of each call", async (t) => {
  // A merge (an item naming identities of two contacts) re-reads the chain heads (contacts, FOR
  // UPDATE) and the keys and states of the surviving contact. As named statements their plans were
  // kept per connection from the first merge on, made with the statistics of that moment.
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const pool = new pg.Pool({
    connectionString: ta.url,
    max: 1,
    // As the service's connections (src/db/client.ts), and the plans of every statement sent back.
    options:
      '-c plan_cache_mode=force_generic_plan -c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0 -c client_min_messages=log',
  })
  t.teardown(() => pool.end())
  const plans: string[] = []
  pool.on('connect', (c) => collectPlans(c, plans))
  const sql = poolSql(pool)
  const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }
  const item = (identities: { type: 'phone' | 'external_id'; value: string }[]) => ({ identities, subscriptionGroupId: g, state: 'subscribed' as const, source: 'api' as const })
  const merge = async (n: number) => {
    await ta.app.ledger.append(sql, ctx, [item([{ type: 'phone', value: `+1415555020${n}` }])])
    await ta.app.ledger.append(sql, ctx, [item([{ type: 'external_id', value: `m-${n}` }])])
    const [r] = await ta.app.ledger.append(sql, ctx, [item([{ type: 'external_id', value: `m-${n}` }, { type: 'phone', value: `+1415555020${n}` }])])
    t.match(r, { status: 'applied' })
  }
  const db = ta.app.database.sql
  await db.query(`ANALYZE contacts, consent_state, ledger_dedupe`)
  for (let n = 0; n < 3; n++) await merge(n)
  // The tables grow (a first import), and nothing analyzes them.
  await db.query(`INSERT INTO contacts (workspace_id, id) SELECT $1, gen_random_uuid() FROM generate_series(1, 20000)`, [DEFAULT_WORKSPACE_ID])
  await db.tx(async (tx) => {
    await allowProjectionWrite(tx) // as the ledger's write path (migration 0019)
    await tx.query(
      `INSERT INTO consent_state (workspace_id, contact_id, subscription_group_id, state, occurred_at, event_seq, event_id, source)
       SELECT workspace_id, id, $2, 'subscribed', now(), 1, gen_random_uuid(), 'import' FROM contacts WHERE workspace_id = $1 AND chain_length = 0`,
      [DEFAULT_WORKSPACE_ID, g],
    )
  })
  await db.query(`INSERT INTO ledger_dedupe (workspace_id, key) SELECT $1, 'k-' || n FROM generate_series(1, 20000) n`, [DEFAULT_WORKSPACE_ID])
  plans.length = 0
  await merge(3)
  const reads = plans.filter((p) => /Query Text: SELECT (id, chain_head, chain_length FROM contacts|date_trunc\('milliseconds', clock_timestamp\(\)\) AS now)/.test(p))
  t.equal(reads.length, 2, 'the merge read the chain heads, then keys and states, once each')
  const seq = reads.flatMap((p) => p.split('\n').filter((l) => /Seq Scan on (contacts|consent_state|ledger_dedupe)\b/.test(l)).map((l) => l.trim()))
  t.same(seq, [], 'by key, not by a scan of the whole table')
})
