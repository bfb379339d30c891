/**
 * Workspace administration: only the root key (CONSENT_ADMIN_KEY) may create and list
 * workspaces and create keys in them; changing CONSENT_ADMIN_KEY replaces the root key.
 */
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { freshDatabase } from '../helpers/db.js'
import { buildTestApp, newWorkspace } from '../helpers/build-app.js'

t.test('the root key creates and lists workspaces and creates keys in them', async (t) => {
  const ta = await buildTestApp(t)
  const created = await ta.app.inject({ method: 'POST', url: '/workspaces', headers: ta.root, payload: { name: 'Acme' } })
  t.equal(created.statusCode, 201, created.body)
  const ws = created.json()
  t.match(ws, { id: /^[0-9a-f-]{36}$/, name: 'Acme', created_at: String })

  const list = await ta.app.inject({ method: 'GET', url: '/workspaces', headers: ta.root })
  t.equal(list.statusCode, 200)
  const names = (list.json().workspaces as Array<{ id: string; name: string }>).map((w) => [w.id, w.name])
  t.same(names, [[DEFAULT_WORKSPACE_ID, 'default'], [ws.id, 'Acme']], 'default workspace plus the new one')

  const key = await ta.app.inject({
    method: 'POST',
    url: `/workspaces/${ws.id}/api-keys`,
    headers: ta.root,
    payload: { name: 'acme admin', scopes: ['admin'] },
  })
  t.equal(key.statusCode, 201, key.body)
  t.equal(key.json().workspace_id, ws.id, 'the key belongs to the named workspace')
  t.type(key.json().key, 'string')

  // The key acts in its own workspace: a group it creates is not visible from `default`.
  const auth = { authorization: `Bearer ${key.json().key}` }
  const g = await ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: auth, payload: { name: 'M', channel: 'sms', category: 'marketing' } })
  t.equal(g.statusCode, 201)
  const [row] = await ta.app.database.sql.query<{ workspace_id: string }>(`SELECT workspace_id FROM subscription_groups WHERE id = $1`, [g.json().id])
  t.equal(row!.workspace_id, ws.id)
  const rootGroups = await ta.app.inject({ method: 'GET', url: '/subscription-groups', headers: ta.root })
  t.same(rootGroups.json().subscription_groups, [], 'the root key, as admin of `default`, does not see it')

  const bad = await ta.app.inject({ method: 'POST', url: '/workspaces', headers: ta.root, payload: { name: '' } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'validation_failed')
  const extra = await ta.app.inject({ method: 'POST', url: '/workspaces', headers: ta.root, payload: { name: 'x', id: DEFAULT_WORKSPACE_ID } })
  t.equal(extra.statusCode, 400, 'unknown field rejected')
})

t.test('an admin key that is not the root key gets 403 on workspace administration', async (t) => {
  const ta = await buildTestApp(t)
  const other = await newWorkspace(ta, 'tenant')
  // An admin key of workspace `default` made through the API is not the root key either.
  const k = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'default admin', scopes: ['admin'] } })
  t.equal(k.statusCode, 201)
  const defaultAdmin = { authorization: `Bearer ${k.json().key}` }

  for (const [label, auth] of [['tenant admin', other.auth], ['default admin (non-root)', defaultAdmin]] as const) {
    const post = await ta.app.inject({ method: 'POST', url: '/workspaces', headers: auth, payload: { name: 'sneaky' } })
    t.equal(post.statusCode, 403, `${label}: POST /workspaces`)
    t.equal(post.json().code, 'forbidden')
    t.match(post.headers['content-type'], /^application\/problem\+json/)

    const get = await ta.app.inject({ method: 'GET', url: '/workspaces', headers: auth })
    t.equal(get.statusCode, 403, `${label}: GET /workspaces`)
    t.notOk(get.body.includes(DEFAULT_WORKSPACE_ID), 'no workspace ids leak')

    for (const target of [other.id, DEFAULT_WORKSPACE_ID]) {
      const mk = await ta.app.inject({ method: 'POST', url: `/workspaces/${target}/api-keys`, headers: auth, payload: { name: 'x', scopes: ['admin'] } })
      t.equal(mk.statusCode, 403, `${label}: POST /workspaces/${target}/api-keys`)
      t.notOk('key' in mk.json())
    }
  }
  // Still works for the admin key in its own scope, so the 403 is about root, not a dead key.
  t.equal((await ta.app.inject({ method: 'GET', url: '/api-keys', headers: other.auth })).statusCode, 200)

  const { sql } = ta.app.database
  const [{ n }] = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM workspaces WHERE name = 'sneaky'`)) as [{ n: number }]
  t.equal(n, 0, 'no workspace was created')
  const [{ k: keys }] = (await sql.query<{ k: number }>(`SELECT count(*)::int AS k FROM api_keys WHERE name = 'x'`)) as [{ k: number }]
  t.equal(keys, 0, 'no key was created')

  const anon = await ta.app.inject({ method: 'GET', url: '/workspaces' })
  t.equal(anon.statusCode, 401, 'no key: 401')
})

t.test('creating a key for a nonexistent or malformed workspace id is 404', async (t) => {
  const ta = await buildTestApp(t)
  const payload = { name: 'x', scopes: ['admin'] }
  const missing = await ta.app.inject({ method: 'POST', url: '/workspaces/00000000-0000-4000-8000-00000000beef/api-keys', headers: ta.root, payload })
  t.equal(missing.statusCode, 404, missing.body)
  t.equal(missing.json().code, 'not_found')
  t.match(missing.headers['content-type'], /^application\/problem\+json/)
  const malformed = await ta.app.inject({ method: 'POST', url: '/workspaces/not-a-uuid/api-keys', headers: ta.root, payload })
  t.equal(malformed.statusCode, 404, malformed.body)
  t.equal(malformed.json().code, 'not_found')
  const [{ n }] = (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM api_keys`)) as [{ n: number }]
  t.equal(n, 1, 'only the root key exists')

  // An uppercase spelling of an existing id names the same workspace.
  const ws = await ta.app.inject({ method: 'POST', url: '/workspaces', headers: ta.root, payload: { name: 'Upper' } })
  const upper = await ta.app.inject({ method: 'POST', url: `/workspaces/${ws.json().id.toUpperCase()}/api-keys`, headers: ta.root, payload })
  t.equal(upper.statusCode, 201, upper.body)
  t.equal(upper.json().workspace_id, ws.json().id)
})

t.test('changing CONSENT_ADMIN_KEY replaces the root key', async (t) => {
  const { url } = await freshDatabase(t)
  const OLD = 'old-root-key-0123456789abcdef'
  const NEW = 'new-root-key-0123456789abcdef'
  const start = async (key: string) => {
    const app = await buildApp(loadConfig({ DATABASE_URL: url, CONSENT_ADMIN_KEY: key, LOG_LEVEL: 'silent', DATABASE_POOL_MAX: '4' }))
    await app.ready()
    return app
  }
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

  const first = await start(OLD)
  t.equal((await first.inject({ method: 'GET', url: '/workspaces', headers: bearer(OLD) })).statusCode, 200, 'old root key works')
  const made = await first.inject({ method: 'POST', url: '/workspaces', headers: bearer(OLD), payload: { name: 'kept' } })
  t.equal(made.statusCode, 201)
  await first.close()

  // Restarting with the same key keeps it (idempotent: no second root row).
  const same = await start(OLD)
  t.equal((await same.inject({ method: 'GET', url: '/workspaces', headers: bearer(OLD) })).statusCode, 200)
  const [{ n: roots }] = (await same.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM api_keys WHERE is_root`)) as [{ n: number }]
  t.equal(roots, 1, 'one root row after a restart with the same key')
  await same.close()

  const second = await start(NEW)
  t.teardown(() => second.close())
  const old = await second.inject({ method: 'GET', url: '/workspaces', headers: bearer(OLD) })
  t.equal(old.statusCode, 401, 'the old root key is refused')
  t.equal(old.headers['www-authenticate'], 'Bearer')
  t.equal(
    (await second.inject({ method: 'GET', url: '/subscription-groups', headers: bearer(OLD) })).statusCode,
    401,
    'also as admin of `default`',
  )
  const now = await second.inject({ method: 'GET', url: '/workspaces', headers: bearer(NEW) })
  t.equal(now.statusCode, 200, 'the new root key works')
  t.ok(
    (now.json().workspaces as Array<{ name: string }>).some((w) => w.name === 'kept'),
    'and sees the workspaces made under the old key',
  )
  const rows = await second.database.sql.query<{ revoked: boolean }>(`SELECT revoked_at IS NOT NULL AS revoked FROM api_keys WHERE is_root ORDER BY created_at`)
  t.same(rows, [{ revoked: true }, { revoked: false }], 'the old root row is revoked, one live root row')
})
