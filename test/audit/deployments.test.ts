/**
 * The Auditor API where it runs besides a plain PostgreSQL pool:
 * - on embedded PGlite (the `npm start` default): events, export, state, checkpoints (the job's
 *   REPEATABLE READ transaction and advisory lock), proof, verify;
 * - with DATABASE_READ_URL: audit reads go through a pool of their own, closed with the app.
 */
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { verifyProof } from '../../src/audit/verify-proof.js'
import { freshDatabase } from '../helpers/db.js'
import { ROOT_KEY, newGroup, type TestApp } from '../helpers/build-app.js'
import { newSigningKeyPem, phoneItem } from './helpers.js'

const root = { authorization: `Bearer ${ROOT_KEY}` }

t.test('on embedded PGlite', async (t) => {
  const app = await buildApp(
    loadConfig({ DATA_DIR: 'memory://', CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent', CHECKPOINT_SIGNING_KEY: newSigningKeyPem(), CHECKPOINT_INTERVAL_MS: '0' }),
  )
  t.teardown(() => app.close())
  await app.ready()
  t.equal(app.database.kind, 'pglite')
  const ta = { app, url: '', root } as TestApp
  const g = await newGroup(ta, root)
  const ws = '00000000-0000-4000-8000-000000000001'
  for (let i = 0; i < 5; i++) {
    await app.ledger.append(app.database.sql, { workspaceId: ws, actor: 'test' }, [
      phoneItem(`+1415555070${i}`, g, 'subscribed', { method: 'web_form', evidence: { consent_text: '=cmd' } }),
    ])
  }
  await app.ledger.append(app.database.sql, { workspaceId: ws, actor: 'test' }, [phoneItem('+14155550700', g, 'unsubscribed')])
  const events = (await app.inject({ url: '/audit/events?phone=%2B14155550700', headers: root })).json().events
  t.equal(events.length, 2)
  const nd = await app.inject({ url: '/audit/export', headers: root })
  t.same(nd.body.trimEnd().split('\n').map((l) => JSON.parse(l)).slice(0, 2), (await app.inject({ url: '/audit/events?limit=2', headers: root })).json().events)
  const csv = await app.inject({ url: '/audit/export?format=csv', headers: root })
  t.match(csv.body, /,\+14155550700,/)
  t.match(csv.body, /,'=cmd,/)
  const state = (await app.inject({ url: '/audit/state?phone=%2B14155550700', headers: root })).json()
  t.equal(state.groups[0].state, 'unsubscribed')
  const cp = await app.inject({ method: 'POST', url: '/audit/checkpoints', headers: root })
  t.equal(cp.statusCode, 201)
  t.equal(cp.json().checkpoint.tree_size, 5)
  await app.audit.runCheckpointJob()
  const proof = (await app.inject({ url: '/audit/proof?phone=%2B14155550700', headers: root })).json()
  t.equal(proof.checkpoint_status, 'included')
  t.same(verifyProof(proof).problems, [])
  const v = (await app.inject({ method: 'POST', url: '/audit/verify', headers: root })).json()
  t.match(v, { ok: true, contacts_checked: 5, events_checked: 6, checkpoints: { checked: 1, roots_checked: 1 } })
})

t.test('DATABASE_READ_URL: audit reads through their own pool', async (t) => {
  const { url } = await freshDatabase(t)
  const app = await buildApp(loadConfig({ DATABASE_URL: url, DATABASE_READ_URL: url, CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent', DATABASE_POOL_MAX: '4' }))
  t.teardown(() => app.close())
  await app.ready()
  t.not(app.audit.readSql, app.database.sql, 'a separate pool')
  const ta = { app, url, root } as TestApp
  const g = await newGroup(ta, root)
  await app.ledger.append(app.database.sql, { workspaceId: '00000000-0000-4000-8000-000000000001', actor: 'test' }, [phoneItem('+14155550710', g, 'subscribed')])
  const r = await app.inject({ url: '/audit/events', headers: root })
  t.equal(r.json().events.length, 1)
  const [row] = await app.database.sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'consent-ledger-audit-read'`,
  )
  t.ok(row!.n >= 1, 'the read pool is connected under its own application_name')
})
