/**
 * API keys: hashed at rest, found by a non-secret prefix, scopes (admin implies
 * all), revocation, last_used_at, and the secret shown once.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildTestApp, newGroup, newWorkspace, ROOT_KEY, type TestApp } from '../helpers/build-app.js'

type Auth = { authorization: string }

async function createKey(ta: TestApp, auth: Auth, scopes: string[], name = 'k') {
  const r = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: auth, payload: { name, scopes } })
  if (r.statusCode !== 201) throw new Error(`key create failed: ${r.statusCode} ${r.body}`)
  const body = r.json() as { id: string; key: string; prefix: string; scopes: string[]; workspace_id: string }
  return { ...body, auth: { authorization: `Bearer ${body.key}` } }
}

const listGroups = (ta: TestApp, headers: Record<string, string>) =>
  ta.app.inject({ method: 'GET', url: '/subscription-groups', headers })

t.test('a created key is stored only as its sha256 hash and found by its prefix', async (t) => {
  const ta = await buildTestApp(t)
  const r = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'reader', scopes: ['consent:read'] } })
  t.equal(r.statusCode, 201, r.body)
  const created = r.json()
  t.type(created.key, 'string')
  const m = /^cl_([a-z0-9]{12})_([A-Za-z0-9_-]{20,})$/.exec(created.key)
  t.ok(m, `key has the shape cl_<prefix>_<secret>: ${created.key}`)
  t.equal(created.prefix, m?.[1], 'prefix in the answer is the key’s cl_<prefix>_ segment')
  t.same(created.scopes, ['consent:read'])
  t.equal(created.revoked_at, null)
  t.equal(created.last_used_at, null)

  const { sql } = ta.app.database
  const rows = await sql.query<Record<string, unknown>>(`SELECT * FROM api_keys`)
  t.ok(rows.length >= 2, 'root key and the new key are stored')
  const dump = JSON.stringify(rows)
  t.notOk(dump.includes(created.key), 'the full key appears in no column of any row')
  t.notOk(dump.includes(m![2]!), 'the secret part appears in no column of any row')
  t.notOk(dump.includes(ROOT_KEY), 'nor does the root key')

  const row = rows.find((x) => x.id === created.id)!
  t.ok(row, 'row of the new key')
  t.equal(row.prefix, created.prefix)
  t.match(row.key_hash, /^[0-9a-f]{64}$/, 'key_hash is sha256 hex')
  t.equal(row.key_hash, createHash('sha256').update(created.key).digest('hex'))

  // The key authenticates...
  t.equal((await listGroups(ta, { authorization: `Bearer ${created.key}` })).statusCode, 200)

  // ...and a never-used key is looked up by its prefix: moving the row's prefix away makes the
  // (otherwise intact) hash unreachable.
  const other = await createKey(ta, ta.root, ['consent:read'], 'moved')
  await sql.query(`UPDATE api_keys SET prefix = 'zzzzzzzzzzzz' WHERE id = $1`, [other.id])
  t.equal((await listGroups(ta, other.auth)).statusCode, 401, 'a key whose prefix finds no row is unknown')
})

t.test('missing, unknown and malformed credentials answer 401 problem+json with WWW-Authenticate', async (t) => {
  const ta = await buildTestApp(t)
  const cases: Array<[string, Record<string, string>]> = [
    ['missing header', {}],
    ['unknown generated-shape key', { authorization: 'Bearer cl_abcdefghijkl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }],
    ['unknown free-form key', { authorization: `Bearer ${ROOT_KEY}x` }],
    ['Basic scheme', { authorization: 'Basic x' }],
    ['Bearer without a token', { authorization: 'Bearer' }],
    ['Bearer with two tokens', { authorization: `Bearer ${ROOT_KEY} extra` }],
  ]
  for (const [label, headers] of cases) {
    const r = await listGroups(ta, headers)
    t.equal(r.statusCode, 401, `${label}: 401`)
    t.match(r.headers['content-type'], /^application\/problem\+json/, `${label}: problem+json`)
    t.equal(r.headers['www-authenticate'], 'Bearer', `${label}: www-authenticate`)
    const body = r.json()
    t.equal(body.status, 401, `${label}: status in body`)
    t.equal(body.code, 'unauthorized', `${label}: code`)
    t.type(body.detail, 'string')
  }
  // Control: the same route answers with a valid key.
  t.equal((await listGroups(ta, ta.root)).statusCode, 200)
})

t.test('each protected route authenticates once per request, its HEAD twin too; public routes ignore credentials', async (t) => {
  const ta = await buildTestApp(t)
  const reader = await createKey(ta, ta.root, ['consent:read'])
  const writer = await createKey(ta, ta.root, ['consent:write'])
  const head = (headers: Record<string, string>) => ta.app.inject({ method: 'HEAD', url: '/subscription-groups', headers })
  t.equal((await head({})).statusCode, 401, 'HEAD without a key')
  t.equal((await head(writer.auth)).statusCode, 403, 'HEAD without the scope')
  t.equal((await head(reader.auth)).statusCode, 200, 'HEAD with the scope')
  // The second use of each answer comes from the in-memory cache (by the presented key).
  const unknown = { authorization: 'Bearer cl_abcdefghijkl_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB' }
  t.same([(await listGroups(ta, unknown)).statusCode, (await listGroups(ta, unknown)).statusCode], [401, 401], 'an unknown key, twice')
  t.same([(await listGroups(ta, writer.auth)).statusCode, (await listGroups(ta, writer.auth)).statusCode], [403, 403], 'a key without the scope, twice')
  t.same([(await listGroups(ta, reader.auth)).statusCode, (await listGroups(ta, reader.auth)).statusCode], [200, 200], 'a reader, twice')
  const health = await ta.app.inject({ method: 'GET', url: '/healthz', headers: { authorization: 'Bearer not-a-key' } })
  t.equal(health.statusCode, 200, 'a public route does not look at Authorization')
  // Count the credential lookups: one per request on a protected route (GET and HEAD), none on a public one.
  const keys = ta.app.apiKeys as { cached: (key: string) => unknown }
  const cached = keys.cached
  let lookups = 0
  keys.cached = (key) => (lookups++, cached(key))
  const counts = []
  for (const inject of [() => head(reader.auth), () => listGroups(ta, reader.auth), () => ta.app.inject({ method: 'GET', url: '/healthz', headers: reader.auth })]) {
    lookups = 0
    t.equal((await inject()).statusCode, 200)
    counts.push(lookups)
  }
  keys.cached = cached
  t.same(counts, [1, 1, 0], 'HEAD and GET look the key up once, a public route never')
})

t.test('a key without the scope gets 403; admin implies every scope', async (t) => {
  const ta = await buildTestApp(t)
  const reader = await createKey(ta, ta.root, ['consent:read'])
  const writer = await createKey(ta, ta.root, ['consent:write'])
  const admin = await createKey(ta, ta.root, ['admin'])

  const post = (auth: Auth) =>
    ta.app.inject({ method: 'POST', url: '/subscription-groups', headers: auth, payload: { name: 'M', channel: 'sms', category: 'marketing' } })

  const denied = await post(reader.auth)
  t.equal(denied.statusCode, 403, 'consent:read cannot create a group (needs admin)')
  t.match(denied.headers['content-type'], /^application\/problem\+json/)
  t.equal(denied.json().code, 'forbidden')
  t.equal(denied.headers['www-authenticate'], undefined, 'a 403 does not ask for other credentials')

  t.equal((await listGroups(ta, writer.auth)).statusCode, 403, 'consent:write cannot read groups (needs consent:read)')
  t.equal((await listGroups(ta, reader.auth)).statusCode, 200, 'consent:read reads groups')
  t.equal((await ta.app.inject({ method: 'GET', url: '/api-keys', headers: reader.auth })).statusCode, 403, 'consent:read cannot list keys')

  t.equal((await listGroups(ta, admin.auth)).statusCode, 200, 'admin implies consent:read')
  t.equal((await post(admin.auth)).statusCode, 201, 'admin creates groups')

  const [{ n }] = (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM subscription_groups`)) as [{ n: number }]
  t.equal(n, 1, 'the forbidden create wrote nothing')
})

t.test('revocation: the key stops working at once, revoking twice is harmless, root and foreign keys are refused', async (t) => {
  const ta = await buildTestApp(t)
  const k = await createKey(ta, ta.root, ['consent:read'])
  // Use it first so the principal sits in the 5 s auth cache: revoke must clear it.
  t.equal((await listGroups(ta, k.auth)).statusCode, 200)
  t.equal((await listGroups(ta, k.auth)).statusCode, 200)

  const del = await ta.app.inject({ method: 'DELETE', url: `/api-keys/${k.id}`, headers: ta.root })
  t.equal(del.statusCode, 200, del.body)
  t.equal(del.json().id, k.id)
  t.type(del.json().revoked_at, 'string')
  t.notOk('key' in del.json(), 'the revoke answer does not show the secret')

  const after = await listGroups(ta, k.auth)
  t.equal(after.statusCode, 401, 'a revoked key answers 401 immediately (cache cleared on revoke)')
  t.equal(after.headers['www-authenticate'], 'Bearer')

  const again = await ta.app.inject({ method: 'DELETE', url: `/api-keys/${k.id}`, headers: ta.root })
  t.equal(again.statusCode, 200, 'revoking twice is harmless')
  t.equal(again.json().revoked_at, del.json().revoked_at, 'and keeps the first revocation time')

  // The root key cannot be revoked through the API: it is excluded, so it is "not found".
  const { sql } = ta.app.database
  const [rootRow] = await sql.query<{ id: string }>(`SELECT id FROM api_keys WHERE is_root AND revoked_at IS NULL`)
  t.ok(rootRow, 'the root key row exists')
  const rootDel = await ta.app.inject({ method: 'DELETE', url: `/api-keys/${rootRow!.id}`, headers: ta.root })
  t.equal(rootDel.statusCode, 404, rootDel.body)
  t.equal(rootDel.json().code, 'not_found')
  const [still] = await sql.query<{ revoked_at: Date | null }>(`SELECT revoked_at FROM api_keys WHERE id = $1`, [rootRow!.id])
  t.equal(still!.revoked_at, null, 'root key row not revoked')
  t.equal((await listGroups(ta, ta.root)).statusCode, 200, 'root key still works')

  // Another workspace's admin cannot revoke (nor learn of) this workspace's key.
  const other = await newWorkspace(ta, 'other')
  const victim = await createKey(ta, ta.root, ['consent:read'], 'victim')
  const foreign = await ta.app.inject({ method: 'DELETE', url: `/api-keys/${victim.id}`, headers: other.auth })
  t.equal(foreign.statusCode, 404, 'cross-workspace revoke is 404')
  t.equal((await listGroups(ta, victim.auth)).statusCode, 200, 'the victim key still works')

  const missing = await ta.app.inject({ method: 'DELETE', url: `/api-keys/00000000-0000-4000-8000-00000000dead`, headers: ta.root })
  t.equal(missing.statusCode, 404)
  const malformed = await ta.app.inject({ method: 'DELETE', url: `/api-keys/not-a-uuid`, headers: ta.root })
  t.equal(malformed.statusCode, 404)
  t.same(
    { ...foreign.json(), instance: undefined },
    { ...missing.json(), instance: undefined },
    'cross-workspace and nonexistent ids answer the same body',
  )
})

t.test('last_used_at is recorded after a use', async (t) => {
  const ta = await buildTestApp(t)
  const k = await createKey(ta, ta.root, ['consent:read'])
  const { sql } = ta.app.database
  const read = async () =>
    (await sql.query<{ last_used_at: Date | null }>(`SELECT last_used_at FROM api_keys WHERE id = $1`, [k.id]))[0]!.last_used_at
  t.equal(await read(), null, 'never used: null')

  t.equal((await listGroups(ta, k.auth)).statusCode, 200)
  // Written off the request path: poll briefly.
  let used: Date | null = null
  for (let i = 0; i < 40 && !used; i++) {
    used = await read()
    if (!used) await sleep(50)
  }
  t.ok(used instanceof Date, 'last_used_at set after a use')

  const list = await ta.app.inject({ method: 'GET', url: '/api-keys', headers: ta.root })
  const dto = list.json().api_keys.find((x: { id: string }) => x.id === k.id)
  t.equal(dto.last_used_at, used!.toISOString(), 'GET /api-keys shows it')
})

t.test('the secret is shown once: at creation, never by GET /api-keys', async (t) => {
  const ta = await buildTestApp(t)
  const k = await createKey(ta, ta.root, ['consent:read', 'audit:read'], 'two scopes')
  t.type(k.key, 'string')
  const list = await ta.app.inject({ method: 'GET', url: '/api-keys', headers: ta.root })
  t.equal(list.statusCode, 200)
  const keys = list.json().api_keys as Array<Record<string, unknown>>
  const mine = keys.find((x) => x.id === k.id)
  t.ok(mine, 'the new key is listed')
  t.same(mine!.scopes, ['consent:read', 'audit:read'])
  t.equal(mine!.prefix, k.prefix)
  for (const x of keys) {
    t.notOk('key' in x, `no key field on ${String(x.name)}`)
    t.notOk('key_hash' in x, `no key_hash field on ${String(x.name)}`)
  }
  t.notOk(list.body.includes(k.key), 'the secret appears nowhere in the listing')
  t.notOk(list.body.includes(ROOT_KEY), 'nor the root key')

  // The listing is per workspace.
  const other = await newWorkspace(ta, 'other')
  const otherList = await ta.app.inject({ method: 'GET', url: '/api-keys', headers: other.auth })
  t.equal(otherList.statusCode, 200)
  const ids = (otherList.json().api_keys as Array<{ id: string; workspace_id: string }>).map((x) => x.id)
  t.notOk(ids.includes(k.id), 'another workspace does not see the key')
  t.ok((otherList.json().api_keys as Array<{ workspace_id: string }>).every((x) => x.workspace_id === other.id))
  await newGroup(ta, other.auth) // the other workspace's admin key is live
})

t.test('key creation validates scopes and names', async (t) => {
  const ta = await buildTestApp(t)
  const bad = [
    { name: 'x', scopes: ['superuser'] },
    { name: 'x', scopes: [] },
    { name: '', scopes: ['admin'] },
    { name: 'x', scopes: ['admin'], extra: 1 },
    { name: 'x', scopes: ['admin', 'admin'] },
  ]
  for (const payload of bad) {
    const r = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload })
    t.equal(r.statusCode, 400, JSON.stringify(payload))
    t.equal(r.json().code, 'validation_failed')
  }
  const [{ n }] = (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM api_keys`)) as [{ n: number }]
  t.equal(n, 1, 'only the root key exists')
})
