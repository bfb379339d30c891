/**
 * One bad object is an item error, never a failed request (docs/braze.md): on /users/track and
 * /v2/subscription/status/set, a malformed object or subscription_groups entry answers 201 with a
 * Braze item error and the rest of the batch is written; only an unusable envelope is a fatal 400.
 */
import t from 'tap'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'

const post = (ta: TestApp, url: string, payload: unknown) => ta.app.inject({ method: 'POST', url, headers: ta.root, payload: payload as object })

async function statusOf(ta: TestApp, group: string, q: string) {
  const r = await ta.app.inject({ method: 'GET', url: `/subscription/status/get?subscription_group_id=${group}&${q}`, headers: ta.root })
  if (r.statusCode !== 200) throw new Error(r.body)
  return r.json().status as Record<string, string>
}

const summary = (errors: { type: string; input_array: string; index: number }[] | undefined) =>
  (errors ?? []).map((e) => `${e.input_array}[${e.index}] ${e.type}`)

t.test('/users/track: an entry without subscription_state is an item error; the other 74 objects are written', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const attributes: Record<string, unknown>[] = Array.from({ length: 75 }, (_, i) => ({
    external_id: `u${i}`,
    subscription_groups: [{ subscription_group_id: g, subscription_state: 'subscribed' }],
  }))
  attributes[3] = { external_id: 'u3', subscription_groups: [{ subscription_group_id: g }] }
  const r = await post(ta, '/users/track', { attributes })
  t.equal(r.statusCode, 201, r.body)
  const body = r.json()
  t.equal(body.message, 'success')
  t.equal(body.attributes_processed, 75, 'the object itself is processed; only its entry failed')
  t.same(summary(body.errors), ['attributes[3] BAD_SUBSCRIPTION_GROUP_STATE'])
  t.match(body.errors[0].message, /^subscription_groups\[0\]: .*subscription_state/)
  t.same(await statusOf(ta, g, 'external_id=u0&external_id=u3&external_id=u74'), { u0: 'Subscribed', u3: 'Unknown', u74: 'Subscribed' })
})

t.test('/users/track: malformed objects and entries of every kind are item errors', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const sg = (over: Record<string, unknown> = {}) => ({ subscription_group_id: g, subscription_state: 'subscribed', ...over })
  const r = await post(ta, '/users/track', {
    attributes: [
      /* 0 */ 'not an object',
      /* 1 */ { external_id: 5 },
      /* 2 */ { phone: ['+14155552671'] },
      /* 3 */ { external_id: 'a3', subscription_groups: 'offers' },
      /* 4 */ { external_id: 'a4', subscription_groups: [sg({ subscription_group_id: 7 }), 'x', sg({ colour: 'red' }), sg({ occurred_at: 12 }), sg()] },
      /* 5 */ { external_id: 'a5', subscription_groups: [sg({ evidence: 'yes' }), sg({ method: 3 })] },
      /* 6 */ { external_id: 'a6', plan: 'gold', subscription_groups: [sg()] },
      /* 7 */ null,
    ],
  })
  t.equal(r.statusCode, 201, r.body)
  const body = r.json()
  t.same(summary(body.errors), [
    'attributes[0] INVALID_ATTRIBUTES_OBJECT',
    'attributes[1] INVALID_EXTERNAL_ID',
    'attributes[2] INVALID_PHONE',
    'attributes[3] BAD_SUBSCRIPTION_GROUPS',
    'attributes[4] BAD_SUBSCRIPTION_GROUP_ID',
    'attributes[4] INVALID_SUBSCRIPTION_GROUP',
    'attributes[4] UNKNOWN_FIELD',
    'attributes[4] INVALID_OCCURRED_AT',
    'attributes[5] INVALID_EVIDENCE',
    'attributes[5] INVALID_METHOD',
    'attributes[7] INVALID_ATTRIBUTES_OBJECT',
  ])
  for (const e of body.errors) t.type(e.message, 'string')
  t.equal(body.attributes_processed, 4, 'objects 3, 4, 5 and 6: their identity is fine')
  t.same(await statusOf(ta, g, 'external_id=a3&external_id=a4&external_id=a5&external_id=a6'), {
    a3: 'Unknown',
    a4: 'Subscribed',
    a5: 'Unknown',
    a6: 'Subscribed',
  })
})

t.test('/users/track: only an unusable envelope is fatal', async (t) => {
  const ta = await buildTestApp(t)
  for (const [payload, why] of [
    [{ attributes: { external_id: 'a' } }, 'attributes not an array'],
    [{ attributes: Array.from({ length: 76 }, (_, i) => ({ external_id: `u${i}` })) }, 'over the object limit'],
    [[], 'not an object'],
  ] as const) {
    const r = await post(ta, '/users/track', payload)
    t.equal(r.statusCode, 400, why)
    t.type(r.json().message, 'string', why)
  }
  const notJson = await ta.app.inject({
    method: 'POST',
    url: '/users/track',
    headers: { ...ta.root, 'content-type': 'application/json' },
    payload: '{"attributes": [',
  })
  t.equal(notJson.statusCode, 400)
  t.type(notJson.json().message, 'string')
})

t.test('/v2/subscription/status/set: a bad subscription_groups item is an item error; the others apply', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const item = (over: Record<string, unknown>) => ({ subscription_group_id: g, subscription_state: 'subscribed', ...over })
  const r = await post(ta, '/v2/subscription/status/set', {
    subscription_groups: [
      /* 0 */ item({ external_ids: ['ok0'] }),
      /* 1 */ { subscription_group_id: g, external_ids: ['nostate'] },
      /* 2 */ item({}),
      /* 3 */ item({ external_ids: Array.from({ length: 51 }, (_, i) => `m${i}`) }),
      /* 4 */ item({ external_ids: ['typo'], colour: 'red' }),
      /* 5 */ 'not an object',
      /* 6 */ item({ external_ids: [5] }),
      /* 7 */ item({ external_ids: ['ok7'] }),
    ],
  })
  t.equal(r.statusCode, 201, r.body)
  t.same(summary(r.json().errors), [
    'subscription_groups[1] BAD_SUBSCRIPTION_GROUP_STATE',
    'subscription_groups[2] MISSING_IDENTIFIER',
    'subscription_groups[3] TOO_MANY_IDENTIFIERS',
    'subscription_groups[4] UNKNOWN_FIELD',
    'subscription_groups[5] INVALID_SUBSCRIPTION_GROUP',
    'subscription_groups[6] INVALID_EXTERNAL_ID',
  ])
  t.same(await statusOf(ta, g, 'external_id=ok0&external_id=ok7&external_id=nostate&external_id=m0&external_id=typo'), {
    ok0: 'Subscribed',
    ok7: 'Subscribed',
    nostate: 'Unknown',
    m0: 'Unknown',
    typo: 'Unknown',
  })
  const envelope = await post(ta, '/v2/subscription/status/set', { subscription_groups: {} })
  t.equal(envelope.statusCode, 400, 'subscription_groups not an array')
  t.type(envelope.json().message, 'string')
})
