/**
 * The embedded database (no DATABASE_URL): PGlite persisted in DATA_DIR, migrated at start, and the
 * data survives a restart on the same directory without re-running migrations.
 */
import t from 'tap'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { expectedMigrationCount } from '../../src/db/migrate.js'
import { ROOT_KEY } from '../helpers/build-app.js'

const root = { authorization: `Bearer ${ROOT_KEY}` }

async function start(dataDir: string): Promise<App> {
  const app = await buildApp(loadConfig({ DATA_DIR: dataDir, CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent' }))
  await app.ready()
  return app
}

async function counts(app: App) {
  const [row] = await app.database.sql.query<{ events: number; migrations: number; groups: number; keys: number }>(
    `SELECT (SELECT count(*)::int FROM consent_events) AS events,
            (SELECT count(*)::int FROM drizzle.__drizzle_migrations) AS migrations,
            (SELECT count(*)::int FROM subscription_groups) AS groups,
            (SELECT count(*)::int FROM api_keys) AS keys`,
  )
  return row!
}

t.test('embedded PGlite in DATA_DIR: serves, persists across a restart, migrates once', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'consent-ledger-embedded-'))
  let app: App | undefined
  // Teardowns run in reverse: the app closes before its directory is removed.
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  t.teardown(() => app?.close())

  app = await start(dataDir)
  t.equal(app.database.kind, 'pglite')
  t.ok((await readdir(dataDir)).length > 0, 'PGlite wrote its files into DATA_DIR')

  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200, ready.body)
  t.same(ready.json(), { status: 'ready', database: 'ok', migrations: 'current', rate_limit: 'local' })

  const group = await app.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: root,
    payload: { name: 'Promotions', channel: 'whatsapp', category: 'marketing' },
  })
  t.equal(group.statusCode, 201, group.body)
  const groupId = group.json().id as string
  const ev = await app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: root,
    payload: { events: [{ external_id: 'u1', subscription_group_id: groupId, state: 'subscribed' }] },
  })
  t.equal(ev.statusCode, 200, ev.body)
  t.equal(ev.json().applied, 1)
  const eventId = ev.json().results[0].event_id as string
  t.ok(eventId)

  const first = await counts(app)
  t.equal(first.events, 1)
  t.equal(first.migrations, expectedMigrationCount(), 'every migration applied once')
  // The append-only trigger is there on the embedded database too.
  await t.rejects(app.database.sql.query('DELETE FROM consent_events'), { message: /append-only/ })

  await app.close()
  app = undefined

  app = await start(dataDir)
  const second = await counts(app)
  t.same(second, { ...first }, 'same rows after the restart: nothing lost, nothing duplicated')
  t.equal(second.migrations, expectedMigrationCount(), 'migrations did not run again')
  const [row] = await app.database.sql.query<{ id: string; state: string }>('SELECT event_id::text AS id, state FROM consent_events')
  t.same(row, { id: String(eventId), state: 'subscribed' }, 'the very event is still there')

  // Still usable after the restart: the root key, the group and the ledger.
  const again = await app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: root,
    payload: { events: [{ external_id: 'u1', subscription_group_id: groupId, state: 'unsubscribed' }] },
  })
  t.equal(again.statusCode, 200, again.body)
  t.equal(again.json().applied, 1)
  t.equal((await counts(app)).events, 2)
})

t.test('DATA_DIR memory:// keeps nothing between instances', async (t) => {
  const a = await start('memory://')
  t.teardown(() => a.close())
  const g = await a.inject({
    method: 'POST',
    url: '/subscription-groups',
    headers: root,
    payload: { name: 'Promotions', channel: 'sms', category: 'marketing' },
  })
  t.equal(g.statusCode, 201, g.body)
  t.equal((await counts(a)).groups, 1)
  const b = await start('memory://')
  t.teardown(() => b.close())
  t.equal((await counts(b)).groups, 0)
  t.equal((await counts(b)).migrations, expectedMigrationCount())
})
