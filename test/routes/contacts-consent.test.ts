/**
 * `POST /contacts/{id}/consent`, the admin toggle: one ledger event with source
 * `admin` and the caller's key as actor, exactly once under an Idempotency-Key; rejections map to
 * problems (404 unknown contact/group, 409 archived group, 422 evidence_required, 400 otherwise)
 * and change nothing.
 */
import t, { type Test } from 'tap'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { buildTestApp, newGroup, type TestApp } from '../helpers/build-app.js'

const RANDOM_ID = '7d0b6f0e-2f2a-4c63-9d55-0f3c1c1a9e42'

interface EventRow {
  event_id: string
  contact_id: string
  subscription_group_id: string
  state: string
  source: string
  actor: string
  method: string | null
  evidence: Record<string, unknown>
  request_id: string | null
  idempotency_key: string | null
}

const eventsOf = (ta: TestApp, contactId: string) =>
  ta.app.database.sql.query<EventRow>(
    `SELECT event_id, contact_id, subscription_group_id, state, source, actor, method, evidence, request_id, idempotency_key
       FROM consent_events WHERE contact_id = $1 AND type = 'consent' ORDER BY id`,
    [contactId],
  )

async function setup(t: Pick<Test, 'teardown'>) {
  const ta = await buildTestApp(t)
  const G = await newGroup(ta, ta.root, { name: 'promos' })
  // A key with exactly consent:write + consent:read, whose id the ledger must record as actor.
  const k = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'admin screen', scopes: ['consent:write', 'consent:read'] } })
  const key = { id: k.json().id as string, auth: { authorization: `Bearer ${k.json().key}` } }
  const phone = '+14155550144'
  const r = await ta.app.inject({ method: 'POST', url: '/consent/events', headers: ta.root, payload: { events: [{ phone, subscription_group_id: G, state: 'subscribed' }] } })
  const contactId = r.json().results[0].contact_id as string
  return { ta, G, key, phone, contactId }
}

t.test('the toggle appends one admin event with the key as actor, and replays under an Idempotency-Key', async (t) => {
  const { ta, G, key, contactId } = await setup(t)
  const toggle = (payload: object, headers: Record<string, string> = {}) =>
    ta.app.inject({ method: 'POST', url: `/contacts/${contactId}/consent`, headers: { ...key.auth, ...headers }, payload })

  const r = await toggle({ subscription_group_id: G, state: 'unsubscribed' }, { 'idempotency-key': 'toggle-1', 'x-request-id': 'req-toggle-1' })
  t.equal(r.statusCode, 201, r.body)
  const body = r.json()
  t.same(Object.keys(body).sort(), ['changed', 'contact_id', 'event_id', 'state', 'subscription_group_id'])
  t.match(body, { contact_id: contactId, subscription_group_id: G, state: 'unsubscribed', changed: true })
  t.match(body.event_id, /^[0-9a-f-]{36}$/)

  let events = await eventsOf(ta, contactId)
  t.equal(events.length, 2, 'exactly one event appended')
  t.match(events[1], {
    event_id: body.event_id,
    subscription_group_id: G,
    state: 'unsubscribed',
    source: 'admin',
    actor: `key:${key.id}`,
    request_id: 'req-toggle-1',
    idempotency_key: 'toggle-1',
  })

  const detail = (await ta.app.inject({ method: 'GET', url: `/contacts/${contactId}`, headers: key.auth })).json()
  t.match(detail.subscription_groups[0], { subscription_group_id: G, state: 'unsubscribed', source: 'admin', event_id: body.event_id })

  // Same key, same request: the first answer again, no second event.
  const replay = await toggle({ subscription_group_id: G, state: 'unsubscribed' }, { 'idempotency-key': 'toggle-1' })
  t.equal(replay.statusCode, 201)
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.same(replay.json(), body)
  events = await eventsOf(ta, contactId)
  t.equal(events.length, 2, 'the replay appended nothing')

  // Same key, other body: 422, nothing appended.
  const reused = await toggle({ subscription_group_id: G, state: 'subscribed' }, { 'idempotency-key': 'toggle-1' })
  t.equal(reused.statusCode, 422)
  t.equal(reused.json().code, 'idempotency_key_reused')
  t.equal((await eventsOf(ta, contactId)).length, 2)

  // Without a key the same toggle is a new event that changes nothing (already unsubscribed).
  const again = await toggle({ subscription_group_id: G, state: 'unsubscribed' })
  t.equal(again.statusCode, 201)
  t.equal(again.json().changed, false, 'changed is false when the state was already that')
  t.not(again.json().event_id, body.event_id)
  t.equal((await eventsOf(ta, contactId)).length, 3, 'but it is recorded')

  // An admin opt-in after an admin opt-out needs no evidence (only a person's opt-out is sticky).
  const back = await toggle({ subscription_group_id: G.toUpperCase(), state: 'subscribed', method: 'paper', evidence: { document_ref: 'form-17' } })
  t.equal(back.statusCode, 201, back.body)
  t.match(back.json(), { subscription_group_id: G, state: 'subscribed', changed: true })
  const last = (await eventsOf(ta, contactId)).at(-1)!
  t.match(last, { method: 'paper', evidence: { document_ref: 'form-17' }, source: 'admin' })

  // An older occurred_at is recorded but does not win (ordering rule).
  const old = await toggle({ subscription_group_id: G, state: 'unsubscribed', occurred_at: '2020-01-01T00:00:00Z' })
  t.equal(old.statusCode, 201)
  t.equal(old.json().changed, false, 'a late event does not override a newer one')
  const state = (await ta.app.inject({ method: 'GET', url: `/contacts/${contactId}`, headers: key.auth })).json().subscription_groups[0].state
  t.equal(state, 'subscribed')

  // consent:read alone may not toggle.
  const rk = await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ta.root, payload: { name: 'reader', scopes: ['consent:read'] } })
  const denied = await ta.app.inject({
    method: 'POST',
    url: `/contacts/${contactId}/consent`,
    headers: { authorization: `Bearer ${rk.json().key}` },
    payload: { subscription_group_id: G, state: 'unsubscribed' },
  })
  t.equal(denied.statusCode, 403)
})

t.test("overriding a person's opt-out needs evidence: 422 evidence_required, then 201 with evidence", async (t) => {
  const { ta, G, key, phone, contactId } = await setup(t)
  const [stop] = await ta.app.ledger.append(ta.app.database.sql, { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }, [
    { identities: [{ type: 'phone', value: phone }], subscriptionGroupId: G, state: 'unsubscribed', source: 'inbound_keyword' },
  ])
  t.equal(stop!.status, 'applied')
  const before = (await eventsOf(ta, contactId)).length
  const toggle = (payload: object) => ta.app.inject({ method: 'POST', url: `/contacts/${contactId}/consent`, headers: key.auth, payload })

  for (const payload of [
    { subscription_group_id: G, state: 'subscribed' },
    { subscription_group_id: G, state: 'subscribed', method: 'paper' },
    { subscription_group_id: G, state: 'subscribed', evidence: { consent_text: 'Yes please' } },
  ]) {
    const r = await toggle(payload)
    t.equal(r.statusCode, 422, JSON.stringify(payload))
    t.match(r.headers['content-type'], /^application\/problem\+json/)
    t.equal(r.json().code, 'evidence_required')
    t.equal(r.json().status, 422)
  }
  t.equal((await eventsOf(ta, contactId)).length, before, 'nothing appended')
  const still = (await ta.app.inject({ method: 'GET', url: `/contacts/${contactId}`, headers: key.auth })).json()
  t.equal(still.subscription_groups[0].state, 'unsubscribed')

  // An admin opt-out needs no evidence.
  const optOut = await toggle({ subscription_group_id: G, state: 'unsubscribed' })
  t.equal(optOut.statusCode, 201)
  t.equal(optOut.json().changed, false)

  const ok = await toggle({ subscription_group_id: G, state: 'subscribed', method: 'paper', evidence: { consent_text: 'Yes please', captured_by: 'agent 7' } })
  t.equal(ok.statusCode, 201, ok.body)
  t.equal(ok.json().changed, true)
  const after = (await ta.app.inject({ method: 'GET', url: `/contacts/${contactId}`, headers: key.auth })).json()
  t.match(after.subscription_groups[0], { state: 'subscribed', source: 'admin', event_id: ok.json().event_id })
})

t.test('rejections map to problems and append nothing', async (t) => {
  const { ta, G, key, contactId } = await setup(t)
  const archived = await newGroup(ta, ta.root, { name: 'old' })
  await ta.app.inject({ method: 'POST', url: `/subscription-groups/${archived}/archive`, headers: ta.root })
  const before = (await eventsOf(ta, contactId)).length
  const future = new Date(Date.now() + 60 * 60 * 1000).toISOString()

  const cases: { payload: unknown; status: number; code: string; url?: string; pointer?: string }[] = [
    { payload: { subscription_group_id: RANDOM_ID, state: 'subscribed' }, status: 404, code: 'not_found' },
    { payload: { subscription_group_id: 'not-a-group', state: 'subscribed' }, status: 404, code: 'not_found' },
    { payload: { subscription_group_id: archived, state: 'unsubscribed' }, status: 409, code: 'archived_subscription_group' },
    { payload: { subscription_group_id: G, state: 'maybe' }, status: 400, code: 'validation_failed' },
    { payload: { subscription_group_id: G }, status: 400, code: 'validation_failed' },
    { payload: { state: 'subscribed' }, status: 400, code: 'validation_failed' },
    { payload: { subscription_group_id: G, state: 'subscribed', method: 'telepathy' }, status: 400, code: 'validation_failed' },
    { payload: { subscription_group_id: G, state: 'subscribed', occurred_at: 'yesterday' }, status: 400, code: 'validation_failed' },
    { payload: { subscription_group_id: G, state: 'subscribed', occurred_at: future }, status: 400, code: 'occurred_at_in_future', pointer: '/body/occurred_at' },
    { payload: { subscription_group_id: G, state: 'subscribed', evidence: 'signed' }, status: 400, code: 'validation_failed' },
    { payload: { subscription_group_id: G, state: 'subscribed', source: 'api' }, status: 400, code: 'validation_failed', pointer: '/body/source' },
    { payload: { subscription_group_id: G, state: 'subscribed', evidence: { ip: 'x\u0000' } }, status: 400, code: 'invalid_text', pointer: '/body/evidence/ip' },
    { payload: { subscription_group_id: G, state: 'unsubscribed' }, status: 404, code: 'not_found', url: `/contacts/${RANDOM_ID}/consent` },
    { payload: { subscription_group_id: G, state: 'unsubscribed' }, status: 404, code: 'not_found', url: `/contacts/nope/consent` },
  ]
  for (const c of cases) {
    const r = await ta.app.inject({ method: 'POST', url: c.url ?? `/contacts/${contactId}/consent`, headers: key.auth, payload: c.payload as object })
    const label = JSON.stringify(c.payload)
    t.equal(r.statusCode, c.status, `${label}: ${r.body}`)
    t.equal(r.json().code, c.code, label)
    t.match(r.headers['content-type'], /^application\/problem\+json/)
    if (c.pointer) t.ok(r.json().errors?.some((e: { pointer: string }) => e.pointer === c.pointer), `${label} points at ${c.pointer}`)
  }
  t.equal((await eventsOf(ta, contactId)).length, before, 'no rejected toggle appended anything')
  const failedKey = await ta.app.inject({
    method: 'POST',
    url: `/contacts/${contactId}/consent`,
    headers: { ...key.auth, 'idempotency-key': 'failing' },
    payload: { subscription_group_id: archived, state: 'unsubscribed' },
  })
  t.equal(failedKey.statusCode, 409)
  const [stored] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM idempotency_keys WHERE key = 'failing'`)
  t.equal(stored!.n, 0, 'a failed request stores no idempotent answer, so a retry may run again')
})
