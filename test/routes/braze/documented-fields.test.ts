/**
 * Every field Braze documents for the served endpoints is accepted (docs/braze.md): honoured where it
 * means something here, ignored otherwise, and identities this service does not resolve yet (email,
 * user_alias, braze_id) answer a clear item error instead of a schema 400. See docs/braze.md.
 */
import t from 'tap'
import { buildTestApp, newGroup, type TestApp } from '../../helpers/build-app.js'

const post = (ta: TestApp, url: string, payload: unknown) => ta.app.inject({ method: 'POST', url, headers: ta.root, payload: payload as object })
const get = (ta: TestApp, url: string) => ta.app.inject({ method: 'GET', url, headers: ta.root })

async function statusOf(ta: TestApp, group: string, q: string) {
  const r = await get(ta, `/subscription/status/get?subscription_group_id=${group}&${q}`)
  if (r.statusCode !== 200) throw new Error(r.body)
  return r.json().status as Record<string, string>
}

const summary = (errors: { type: string; input_array: string; index: number }[] | undefined) =>
  (errors ?? []).map((e) => `${e.input_array}[${e.index}] ${e.type}`)

const countContacts = async (ta: TestApp) => (await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts`))[0]!.n

t.test('use_double_opt_in_logic: false (or with unsubscribed) applies; true with subscribed records no consent', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)

  const v1 = await post(ta, '/subscription/status/set', {
    subscription_group_id: g,
    subscription_state: 'subscribed',
    external_id: ['v1-plain'],
    use_double_opt_in_logic: false,
  })
  t.equal(v1.statusCode, 201, v1.body)
  t.same(v1.json(), { message: 'success' })
  const v1Double = await post(ta, '/subscription/status/set', {
    subscription_group_id: g,
    subscription_state: 'subscribed',
    external_id: ['v1-double'],
    use_double_opt_in_logic: true,
  })
  t.equal(v1Double.statusCode, 201, v1Double.body)
  t.same(summary(v1Double.json().errors), ['external_id[0] DOUBLE_OPT_IN_NOT_SUPPORTED'])
  const v1Out = await post(ta, '/subscription/status/set', {
    subscription_group_id: g,
    subscription_state: 'unsubscribed',
    external_id: 'v1-out',
    use_double_opt_in_logic: true,
  })
  t.same(v1Out.json(), { message: 'success' }, 'the flag does not apply to an opt-out')

  const v2 = await post(ta, '/v2/subscription/status/set', {
    subscription_groups: [
      { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ['v2-plain'], use_double_opt_in_logic: false },
      { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ['v2-double'], use_double_opt_in_logic: true },
    ],
  })
  t.equal(v2.statusCode, 201, v2.body)
  t.same(summary(v2.json().errors), ['subscription_groups[1] DOUBLE_OPT_IN_NOT_SUPPORTED'])

  const track = await post(ta, '/users/track', {
    attributes: [
      {
        external_id: 'track-user',
        subscription_groups: [
          { subscription_group_id: g, subscription_state: 'subscribed', use_double_opt_in_logic: true },
          { subscription_group_id: g, subscription_state: 'unsubscribed', use_double_opt_in_logic: false, occurred_at: '2026-01-01T00:00:00Z' },
        ],
      },
    ],
  })
  t.equal(track.statusCode, 201, track.body)
  t.same(summary(track.json().errors), ['attributes[0] DOUBLE_OPT_IN_NOT_SUPPORTED'])
  t.match(track.json().errors[0].message, /^subscription_groups\[0\]: /)

  t.same(
    await statusOf(ta, g, 'external_id=v1-plain&external_id=v1-double&external_id=v1-out&external_id=v2-plain&external_id=v2-double&external_id=track-user'),
    {
      'v1-plain': 'Subscribed',
      'v1-double': 'Unknown',
      'v1-out': 'Unsubscribed',
      'v2-plain': 'Subscribed',
      'v2-double': 'Unknown',
      'track-user': 'Unsubscribed',
    },
  )
})

t.test('/users/track: email, user_alias and braze_id as identifiers answer UNSUPPORTED_IDENTIFIER', async (t) => {
  const ta = await buildTestApp(t)
  const r = await post(ta, '/users/track', {
    api_key: 'legacy-body-key-is-ignored',
    attributes: [
      /* 0 */ { email: 'only@example.com', plan: 'x' },
      /* 1 */ { user_alias: { alias_name: 'device123', alias_label: 'my_device_identifier' }, first_name: 'Alice' },
      /* 2 */ { braze_id: '5cd7cb1f3c3ef0b0f0000000', first_name: 'Bob' },
      /* 3 */ { external_id: 'with-email', email: 'e@example.com', push_token_import: false, first_name: 'Eve' },
    ],
  })
  t.equal(r.statusCode, 201, r.body)
  t.same(summary(r.json().errors), ['attributes[0] UNSUPPORTED_IDENTIFIER', 'attributes[1] UNSUPPORTED_IDENTIFIER', 'attributes[2] UNSUPPORTED_IDENTIFIER'])
  t.equal(r.json().attributes_processed, 1)
  const [c] = await ta.app.database.sql.query<{ attributes: Record<string, unknown> }>(`SELECT attributes FROM contacts`)
  t.same(c!.attributes, { email: 'e@example.com', first_name: 'Eve' }, 'email beside external_id is a profile field; push_token_import is not stored')
  t.equal(await countContacts(ta), 1)
})

t.test('/users/track: _update_existing_only is honoured', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  await post(ta, '/users/track', { attributes: [{ external_id: 'known', plan: 'a' }] })
  const r = await post(ta, '/users/track', {
    attributes: [
      { external_id: 'known', plan: 'b', _update_existing_only: true, subscription_groups: [{ subscription_group_id: g, subscription_state: 'subscribed' }] },
      { external_id: 'stranger', plan: 'c', _update_existing_only: true },
      { external_id: 'newcomer', plan: 'd', _update_existing_only: false },
      { external_id: 'flagged', _update_existing_only: 'yes' },
    ],
  })
  t.equal(r.statusCode, 201, r.body)
  t.same(summary(r.json().errors), ['attributes[1] USER_NOT_FOUND', 'attributes[3] INVALID_FIELD'])
  t.equal(r.json().attributes_processed, 2)
  const rows = await ta.app.database.sql.query<{ value: string; attributes: Record<string, unknown> }>(
    `SELECT i.value, c.attributes FROM identities i JOIN contacts c ON c.id = i.contact_id ORDER BY i.value`,
  )
  t.same(rows, [
    { value: 'known', attributes: { plan: 'b' } },
    { value: 'newcomer', attributes: { plan: 'd' } },
  ])
  t.same(await statusOf(ta, g, 'external_id=known'), { known: 'Subscribed' })
})

t.test('v1 and v2: email identifiers are item errors; the other identifiers apply', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const v1 = await post(ta, '/subscription/status/set', {
    subscription_group_id: g,
    subscription_state: 'subscribed',
    external_id: 'v1-user',
    email: ['a@example.com', 'b@example.com'],
  })
  t.equal(v1.statusCode, 201, v1.body)
  t.same(summary(v1.json().errors), ['email[0] UNSUPPORTED_IDENTIFIER', 'email[1] UNSUPPORTED_IDENTIFIER'])
  const v1Only = await post(ta, '/subscription/status/set', { subscription_group_id: g, subscription_state: 'subscribed', email: 'c@example.com' })
  t.equal(v1Only.statusCode, 201, v1Only.body)
  t.same(summary(v1Only.json().errors), ['email[0] UNSUPPORTED_IDENTIFIER'])

  const v2 = await post(ta, '/v2/subscription/status/set', {
    subscription_groups: [
      { subscription_group_id: g, subscription_state: 'subscribed', external_ids: ['v2-user'], emails: ['a@example.com'] },
      { subscription_group_id: g, subscription_state: 'subscribed', phones: '+14155552671' },
    ],
  })
  t.equal(v2.statusCode, 201, v2.body)
  t.same(summary(v2.json().errors), ['subscription_groups[0].emails[0] UNSUPPORTED_IDENTIFIER'])
  t.same(await statusOf(ta, g, 'external_id=v1-user&external_id=v2-user&phone=%2B14155552671'), {
    'v1-user': 'Subscribed',
    'v2-user': 'Subscribed',
    '+14155552671': 'Subscribed',
  })
})

t.test('status/get and user/status: email is an item error, not a 400', async (t) => {
  const ta = await buildTestApp(t)
  const g = await newGroup(ta, ta.root)
  const s = await get(ta, `/subscription/status/get?subscription_group_id=${g}&external_id=x&email=a%40example.com`)
  t.equal(s.statusCode, 200, s.body)
  t.same(s.json().status, { x: 'Unknown' })
  t.same(summary(s.json().errors), ['email[0] UNSUPPORTED_IDENTIFIER'])
  const brackets = await get(ta, `/subscription/status/get?subscription_group_id=${g}&email[]=a%40example.com`)
  t.equal(brackets.statusCode, 200, brackets.body)
  t.same(summary(brackets.json().errors), ['email[][0] UNSUPPORTED_IDENTIFIER'])

  const u = await get(ta, `/subscription/user/status?external_id=x&email=a%40example.com`)
  t.equal(u.statusCode, 200, u.body)
  t.equal(u.json().users.length, 1)
  t.same(summary(u.json().errors), ['email[0] UNSUPPORTED_IDENTIFIER'])
})
