/**
 * `GET|PUT /settings/keywords` (docs/webhook.md): defaults until set (REVOKE and OPTOUT included, STOP
 * PROMOTIONS marketing only), keywords stored normalised upper-case, validation (400 shape, 422
 * content, nothing changed), scopes, per workspace, Idempotency-Key, and the consent settings in
 * the same row left alone.
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace, type TestApp } from '../helpers/build-app.js'
import { DEFAULT_KEYWORD_SETTINGS } from '../../src/webhook/keywords.js'

type Auth = { authorization: string }
const get = (ta: TestApp, auth: Auth) => ta.app.inject({ method: 'GET', url: '/settings/keywords', headers: auth })
const put = (ta: TestApp, auth: Auth, payload: unknown, headers: Record<string, string> = {}) =>
  ta.app.inject({ method: 'PUT', url: '/settings/keywords', headers: { ...auth, ...headers }, payload: payload as object })

t.test('defaults, normalised storage, validation', async (t) => {
  const ta = await buildTestApp(t)
  const A = await newWorkspace(ta, 'A')
  const d = await get(ta, A.auth)
  t.equal(d.statusCode, 200)
  t.same(d.json(), DEFAULT_KEYWORD_SETTINGS)
  const rules = d.json().rules as { keyword: string; action: string; scope: unknown }[]
  t.same(
    rules.filter((r) => r.action === 'opt_out' && r.scope === 'all').map((r) => r.keyword),
    ['STOP', 'STOPALL', 'STOP ALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'REVOKE', 'OPTOUT', 'OPT OUT',
      'PARAR', 'BAJA', 'DAR DE BAJA', 'DESCADASTRAR', 'ARRÊT', 'DÉSABONNER', 'STOPP', 'ABMELDEN', 'BERHENTI', 'СТОП', 'ОТПИСАТЬСЯ', 'إيقاف', 'إلغاء الاشتراك'],
  )
  t.same(rules.filter((r) => r.scope === 'marketing').map((r) => r.keyword), ['STOP PROMOTIONS', 'SAIR', 'BASTA'])
  t.same(rules.filter((r) => r.action === 'opt_in').map((r) => r.keyword), ['START', 'UNSTOP', 'ALTA', 'INICIAR', 'DÉMARRER'])
  t.same(d.json(), (await get(ta, ta.root)).json(), 'the same for every workspace')

  const G = await newGroup(ta, A.auth)
  const ok = await put(ta, A.auth, {
    enabled: true,
    mode: 'lenient',
    rules: [
      { keyword: '  stop  ', action: 'opt_out', scope: 'all' },
      { keyword: 'Basta ya!', action: 'opt_out', scope: [G.toUpperCase()] },
      { keyword: 'start', action: 'opt_in', scope: 'marketing' },
    ],
  })
  t.equal(ok.statusCode, 200, ok.body)
  const stored = { enabled: true, mode: 'lenient', rules: [{ keyword: 'STOP', action: 'opt_out', scope: 'all' }, { keyword: 'BASTA YA', action: 'opt_out', scope: [G] }, { keyword: 'START', action: 'opt_in', scope: 'marketing' }] }
  t.same(ok.json(), stored, 'stored upper-case and normalised')
  t.same((await get(ta, A.auth)).json(), stored)

  // Shape errors: 400.
  for (const payload of [
    {},
    { enabled: true, mode: 'fuzzy', rules: [] },
    { enabled: 'yes', mode: 'exact', rules: [] },
    { enabled: true, mode: 'exact', rules: [{ keyword: 'X', action: 'maybe', scope: 'all' }] },
    { enabled: true, mode: 'exact', rules: [{ keyword: 'X', action: 'opt_out', scope: 'some' }] },
    { enabled: true, mode: 'exact', rules: [{ keyword: 'X', action: 'opt_out', scope: [] }] },
    { enabled: true, mode: 'exact', rules: [{ keyword: 'X', action: 'opt_out', scope: ['not-a-uuid'] }] },
    { enabled: true, mode: 'exact', rules: [{ keyword: '', action: 'opt_out', scope: 'all' }] },
    { enabled: true, mode: 'exact', rules: [{ keyword: 'X', action: 'opt_out' }] },
    { enabled: true, mode: 'exact', rules: [], extra: 1 },
  ]) {
    const r = await put(ta, A.auth, payload)
    t.equal(r.statusCode, 400, JSON.stringify(payload))
    t.equal(r.json().code, 'validation_failed')
  }
  // Content errors: 422 with pointers.
  const sms = await newGroup(ta, A.auth, { channel: 'sms', name: 'sms' })
  const B = await newWorkspace(ta, 'B')
  const GB = await newGroup(ta, B.auth)
  const bad = await put(ta, A.auth, {
    enabled: true,
    mode: 'exact',
    rules: [
      { keyword: 'stop', action: 'opt_out', scope: 'all' },
      { keyword: 'STOP!', action: 'opt_out', scope: 'marketing' },
      { keyword: '🛑', action: 'opt_out', scope: 'all' },
      { keyword: 'sms stop', action: 'opt_out', scope: [sms] },
      { keyword: 'their stop', action: 'opt_out', scope: [GB] },
    ],
  })
  t.equal(bad.statusCode, 422)
  t.equal(bad.json().code, 'invalid_keyword_settings')
  t.same(
    bad.json().errors.map((e: { pointer: string; code: string }) => [e.pointer, e.code]),
    [
      ['/body/rules/1/keyword', 'duplicate_keyword'],
      ['/body/rules/2/keyword', 'invalid_keyword'],
      ['/body/rules/3/scope/0', 'invalid_scope'],
      ['/body/rules/4/scope/0', 'unknown_subscription_group'],
    ],
    "another workspace's group is unknown here",
  )
  t.same((await get(ta, A.auth)).json(), stored, 'unchanged by rejected PUTs')
  t.same((await get(ta, B.auth)).json(), DEFAULT_KEYWORD_SETTINGS, "A's PUT does not change B")
})

t.test('scopes, Idempotency-Key, and the consent settings in the same row', async (t) => {
  const ta = await buildTestApp(t)
  const body = { enabled: false, mode: 'exact', rules: [] }
  const key = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'r', scopes: ['consent:read'] } })
  const reader = { authorization: `Bearer ${key.json().key}` }
  t.equal((await get(ta, reader)).statusCode, 200, 'consent:read may read')
  t.equal((await put(ta, reader, body)).statusCode, 403, 'only admin may write')
  t.equal((await get(ta, {} as Auth)).statusCode, 401)

  await ta.app.inject({ method: 'PUT', url: '/settings/consent', headers: ta.root, payload: { require_evidence_to_override_opt_out: false } })
  const k1 = await put(ta, ta.root, body, { 'idempotency-key': 'kw-1' })
  const k2 = await put(ta, ta.root, body, { 'idempotency-key': 'kw-1' })
  t.equal(k1.statusCode, 200)
  t.equal(k2.headers['idempotent-replayed'], 'true')
  t.equal((await put(ta, ta.root, { ...body, enabled: true }, { 'idempotency-key': 'kw-1' })).statusCode, 422)
  t.same((await get(ta, ta.root)).json(), body)
  t.same((await ta.app.inject({ method: 'GET', url: '/settings/consent', headers: ta.root })).json(), { require_evidence_to_override_opt_out: false }, 'consent settings untouched')
})
