/**
 * Text that cannot be stored exactly (NUL, unpaired surrogates), hostile nesting, non-finite or
 * unbounded numbers and impossible dates answer 400 with a pointer, never 500, and change nothing
 * (docs/input-rules.md). Each case below answered 500 (or was silently altered) before the guard.
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'

const NUL = 'a\u0000b'
const LONE = 'a\ud800b'

function nested(depth: number): unknown {
  let v: unknown = 'leaf'
  for (let i = 0; i < depth; i++) v = { x: v }
  return v
}

t.test('native routes refuse unstorable text with a problem naming each place', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const ev = (over: Record<string, unknown>) => ({ events: [{ external_id: 'e1', subscription_group_id: g, state: 'subscribed', ...over }] })
  const cases: { name: string; method: 'GET' | 'POST' | 'PUT' | 'PATCH'; url: string; body?: unknown; root?: boolean; code: string; pointer: string }[] = [
    { name: 'NUL external_id', method: 'POST', url: '/consent/events', body: ev({ external_id: NUL }), code: 'invalid_text', pointer: '/body/events/0/external_id' },
    { name: 'lone surrogate external_id', method: 'POST', url: '/consent/events', body: ev({ external_id: LONE }), code: 'invalid_text', pointer: '/body/events/0/external_id' },
    { name: 'lone surrogate in evidence', method: 'POST', url: '/consent/events', body: ev({ evidence: { note: LONE } }), code: 'invalid_text', pointer: '/body/events/0/evidence/note' },
    { name: 'NUL in an evidence key', method: 'POST', url: '/consent/events', body: ev({ evidence: { ['n' + NUL]: 'x' } }), code: 'invalid_text', pointer: '/body/events/0/evidence/na\ufffdb' },
    { name: 'evidence nested 3,000 deep', method: 'POST', url: '/consent/events', body: ev({ evidence: nested(3000) }), code: 'too_deep', pointer: '/body/events/0/evidence' + '/x'.repeat(29) },
    { name: 'check body', method: 'POST', url: '/consent/check', body: { subscription_group_id: g, external_ids: ['ok', NUL] }, code: 'invalid_text', pointer: '/body/external_ids/1' },
    { name: 'check query', method: 'GET', url: `/consent/check?subscription_group_id=${g}&external_id=a%00b`, code: 'invalid_text', pointer: '/querystring/external_id' },
    { name: 'group name', method: 'POST', url: '/subscription-groups', body: { name: NUL, channel: 'whatsapp', category: 'marketing' }, code: 'invalid_text', pointer: '/body/name' },
    { name: 'group rename', method: 'PATCH', url: `/subscription-groups/${g}`, body: { name: LONE }, code: 'invalid_text', pointer: '/body/name' },
    { name: 'number display name', method: 'POST', url: '/whatsapp/numbers', body: { phone_number_id: '123', display_phone_number: NUL }, code: 'invalid_text', pointer: '/body/display_phone_number' },
    { name: 'keyword', method: 'PUT', url: '/settings/keywords', body: { enabled: true, mode: 'exact', rules: [{ keyword: 'st' + LONE, action: 'opt_out', scope: 'all' }] }, code: 'invalid_text', pointer: '/body/rules/0/keyword' },
    { name: 'workspace name', method: 'POST', url: '/workspaces', body: { name: NUL }, root: true, code: 'invalid_text', pointer: '/body/name' },
    { name: 'contact id param', method: 'GET', url: '/contacts/a%00b', code: 'invalid_text', pointer: '/params/id' },
    { name: 'api key name', method: 'POST', url: '/api-keys', body: { name: LONE, scopes: ['admin'] }, code: 'invalid_text', pointer: '/body/name' },
  ]
  for (const c of cases) {
    const r = await ta.app.inject({ method: c.method, url: c.url, headers: c.root ? ta.root : ws.auth, ...(c.body === undefined ? {} : { payload: c.body as object }) })
    t.equal(r.statusCode, 400, `${c.name}: ${r.body.slice(0, 200)}`)
    t.match(r.headers['content-type'], /application\/problem\+json/, c.name)
    const p = r.json()
    t.equal(p.code, c.code, c.name)
    t.ok(p.errors?.some((e: { pointer: string }) => e.pointer === c.pointer), `${c.name}: pointer ${c.pointer} in ${JSON.stringify(p.errors)}`)
  }
  const [{ n }] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events`)
  t.equal(n, 0, 'nothing was appended')
  const groups = (await ta.app.inject({ method: 'GET', url: '/subscription-groups', headers: ws.auth })).json()
  t.same(groups.subscription_groups?.map((x: { name: string }) => x.name) ?? groups, ['Marketing'], 'no group created or renamed')
})

t.test('Braze read routes answer Braze-shaped 400s for unstorable identifiers', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  for (const url of [`/subscription/status/get?subscription_group_id=${g}&external_id=a%00b`, '/subscription/user/status?external_id=a%00b']) {
    const r = await ta.app.inject({ method: 'GET', url, headers: ws.auth })
    t.equal(r.statusCode, 400, url)
    t.match(r.json(), { message: String, errors: [{ pointer: '/querystring/external_id', code: 'nul_character' }] }, url)
  }
})

t.test('non-finite and out-of-range numbers are refused', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  for (const raw of ['1e999', '-1e999', '1e12', '2147483648']) {
    const r = await ta.app.inject({
      method: 'POST',
      url: '/api-keys',
      headers: { ...ws.auth, 'content-type': 'application/json' },
      payload: `{"name":"k","scopes":["admin"],"rate_limit_max":${raw}}`,
    })
    t.equal(r.statusCode, 400, `rate_limit_max ${raw}: ${r.body}`)
    t.equal(r.json().code, 'validation_failed')
    t.equal(r.json().errors[0].pointer, '/body/rate_limit_max')
  }
  for (const offset of ['1e999', '1e300', 'Infinity', 'NaN', '-1']) {
    const r = await ta.app.inject({ method: 'GET', url: `/subscription/user/status?external_id=x&offset=${offset}`, headers: ws.auth })
    t.equal(r.statusCode, 400, `offset ${offset}: ${r.body}`)
    t.ok(r.json().message, 'Braze shape')
  }
  const keys = (await ta.app.inject({ method: 'GET', url: '/api-keys', headers: ws.auth })).json()
  t.equal(keys.api_keys.length, 1, 'no key created')
})

t.test('dates: year 0000 and impossible calendar days are refused', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  for (const url of [
    '/audit/export?from=0000-01-01T00:00:00Z',
    '/audit/events?from=0000-01-01T00:00:00Z',
    '/audit/events?to=2026-02-30T00:00:00Z',
    '/audit/state?external_id=x&at=0000-06-01T00:00:00Z',
  ]) {
    const r = await ta.app.inject({ method: 'GET', url, headers: ws.auth })
    t.equal(r.statusCode, 400, `${url}: ${r.body.slice(0, 200)}`)
    t.equal(r.json().code, 'validation_failed', url)
  }
  const r = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ws.auth,
    payload: {
      events: ['0000-01-01T00:00:00Z', '2026-02-30T00:00:00Z', '2025-02-29T10:00:00Z', '2024-02-29T10:00:00Z'].map((occurred_at, i) => ({
        external_id: `d${i}`,
        subscription_group_id: g,
        state: 'subscribed',
        occurred_at,
      })),
    },
  })
  t.equal(r.statusCode, 200, r.body)
  t.same(
    r.json().results.map((x: { status: string; code?: string }) => x.code ?? x.status),
    ['invalid_occurred_at', 'invalid_occurred_at', 'invalid_occurred_at', 'applied'],
  )
})
