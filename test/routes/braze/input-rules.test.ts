/**
 * Braze batch routes and unstorable text (docs/input-rules.md): a NUL or an unpaired surrogate in
 * one object or identifier is an item error in Braze's shape and the rest of the batch is written.
 * Before, each of these answered 500 for the whole request, or (an unpaired surrogate in an
 * external_id) was stored as U+FFFD while hashed as sent.
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace } from '../../helpers/build-app.js'

const NUL = 'a\u0000b'
const LONE = 'a\ud800b'

t.test('/users/track: one bad object is an item error, the others are written', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const entry = (evidence?: object) => ({ subscription_group_id: g, subscription_state: 'subscribed', ...(evidence ? { evidence } : {}) })
  const r = await ta.app.inject({
    method: 'POST',
    url: '/users/track',
    headers: ws.auth,
    payload: {
      attributes: [
        { external_id: NUL, subscription_groups: [entry()] },
        { external_id: 'x\ud800' },
        { external_id: 'bad-value', colour: LONE },
        { external_id: 'bad-key', ['k' + NUL]: 1 },
        { external_id: 'bad-evidence', subscription_groups: [entry({ note: NUL }), entry()] },
        { external_id: 'fine', colour: 'red', subscription_groups: [entry()] },
        { phone: '+14155552671\u0000' },
      ],
    },
  })
  t.equal(r.statusCode, 201, r.body)
  const body = r.json()
  t.same(
    body.errors.map((e: { index: number; type: string; input_array: string }) => [e.input_array, e.index, e.type]),
    [
      ['attributes', 0, 'INVALID_EXTERNAL_ID'],
      ['attributes', 1, 'INVALID_EXTERNAL_ID'],
      ['attributes', 2, 'INVALID_TEXT'],
      ['attributes', 3, 'INVALID_TEXT'],
      ['attributes', 4, 'INVALID_EVIDENCE'],
      ['attributes', 6, 'INVALID_PHONE'],
    ],
  )
  t.equal(body.attributes_processed, 2, 'bad-evidence (its other entry applies) and fine')
  const { sql } = ta.app.database
  const ids = await sql.query<{ value: string }>(`SELECT value FROM identities WHERE workspace_id = $1 ORDER BY value`, [ws.id])
  t.same(ids.map((x) => x.value), ['bad-evidence', 'fine'])
  const [fine] = await sql.query<{ attributes: Record<string, unknown> }>(
    `SELECT c.attributes FROM contacts c JOIN identities i ON i.contact_id = c.id WHERE i.value = 'fine'`,
  )
  t.same(fine!.attributes, { colour: 'red' })
  const [{ n }] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE workspace_id = $1 AND type = 'consent'`, [ws.id])
  t.equal(n, 2, 'the valid entries of bad-evidence and fine')

  const verify = await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: ws.auth })
  t.equal(verify.json().ok, true, 'what was hashed is what was stored')

  const deep = await ta.app.inject({ method: 'POST', url: '/users/track', headers: ws.auth, payload: { attributes: [{ external_id: 'd', x: JSON.parse('['.repeat(40) + ']'.repeat(40)) }] } })
  t.equal(deep.statusCode, 400, 'hostile nesting is an unusable envelope')
  t.match(deep.json(), { message: String, errors: [{ code: 'too_deep' }] })
})

t.test('status/set v1 and v2: an unstorable identifier is an item error', async (t) => {
  const ta = await buildTestApp(t)
  const ws = await newWorkspace(ta)
  const g = await newGroup(ta, ws.auth)
  const v1 = await ta.app.inject({
    method: 'POST',
    url: '/subscription/status/set',
    headers: ws.auth,
    payload: { subscription_group_id: g, subscription_state: 'subscribed', external_id: ['good', NUL, LONE], phone: ['+1415555\u00002671'] },
  })
  t.equal(v1.statusCode, 201, v1.body)
  t.same(
    v1.json().errors.map((e: { index: number; type: string; input_array: string }) => [e.input_array, e.index, e.type]),
    [
      ['external_id', 1, 'INVALID_EXTERNAL_ID'],
      ['external_id', 2, 'INVALID_EXTERNAL_ID'],
      ['phone', 0, 'INVALID_PHONE'],
    ],
  )
  const v2 = await ta.app.inject({
    method: 'POST',
    url: '/v2/subscription/status/set',
    headers: ws.auth,
    payload: {
      subscription_groups: [
        { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ['v2-good', NUL] },
        { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ['v2-other'], evidence: { ['k' + LONE]: 1 } },
      ],
    },
  })
  t.equal(v2.statusCode, 201, v2.body)
  t.same(
    v2.json().errors.map((e: { index: number; type: string; input_array: string }) => [e.input_array, e.index, e.type]),
    [
      ['subscription_groups[0].external_ids', 1, 'INVALID_EXTERNAL_ID'],
      ['subscription_groups', 1, 'INVALID_EVIDENCE'],
    ],
  )
  const ids = await ta.app.database.sql.query<{ value: string }>(`SELECT value FROM identities WHERE workspace_id = $1 ORDER BY value`, [ws.id])
  t.same(ids.map((x) => x.value), ['good', 'v2-good'])
})
