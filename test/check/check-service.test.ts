/**
 * Single checks that share statements (src/check/check-service.ts, CHECK_GROUP_CONCURRENCY): under
 * concurrency they are answered by fewer statements than checks, each answer exactly what the check
 * gets alone, never across targets or workspaces, and never from a snapshot older than the check.
 */
import t from 'tap'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { createCheckService, type CheckResult, type CheckTarget } from '../../src/check/check-service.js'
import type { IdentityType } from '../../src/contacts/identity.js'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'

const phone = (n: number) => `+1415555${String(n).padStart(4, '0')}`

t.test('concurrent single checks share statements and answer as each does alone', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const g = await newGroup(ta, ta.root, { phone_number_id: 'PN1' })
  const sms = await newGroup(ta, ta.root, { name: 'sms', channel: 'sms', category: 'marketing' })
  const open = await newGroup(ta, ta.root, { name: 'service', category: 'utility', requires_opt_in: false })
  const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }
  await ta.app.ledger.append(sql, ctx, [
    { identities: [{ type: 'phone', value: phone(1) }], subscriptionGroupId: g, state: 'subscribed', source: 'api' },
    { identities: [{ type: 'phone', value: phone(2) }], subscriptionGroupId: g, state: 'unsubscribed', source: 'api' },
    { identities: [{ type: 'phone', value: phone(2) }], subscriptionGroupId: sms, state: 'subscribed', source: 'api' },
    { identities: [{ type: 'phone', value: phone(3) }, { type: 'external_id', value: 'u3' }], subscriptionGroupId: g, state: 'subscribed', source: 'api' },
    {
      identities: [{ type: 'phone', value: phone(3) }],
      subscriptionGroupId: sms,
      state: 'unsubscribed',
      source: 'meta_user_preferences',
      platformStop: { action: 'stop', phoneNumberId: 'PN1' },
    },
    { identities: [{ type: 'bsuid', value: 'US.13491208655302741918' }], subscriptionGroupId: g, state: 'subscribed', source: 'api' },
  ])
  const idents: { type: IdentityType; value: string }[] = [
    ...[phone(1), phone(2), '14155550003', phone(3), phone(9), 'nonsense'].map((value) => ({ type: 'phone' as const, value })),
    { type: 'external_id', value: 'u3' },
    { type: 'external_id', value: 'nobody' },
    { type: 'bsuid', value: 'US.13491208655302741918' },
  ]
  const targets: CheckTarget[] = [
    { subscription_group_id: g },
    { subscription_group_id: sms },
    { subscription_group_id: open },
    { channel: 'whatsapp', category: 'marketing', phone_number_id: 'PN1' },
    { channel: 'sms', category: 'marketing' },
  ]
  const asks = targets.flatMap((target) => idents.map((ident) => ({ target, ident })))

  // Each check alone, one after the other, by a service that never shares a statement.
  const alone = createCheckService(sql, { concurrency: 0 })
  const expected: CheckResult[] = []
  for (const a of asks) expected.push((await alone.check(DEFAULT_WORKSPACE_ID, a.target, [a.ident]))[0]!)
  t.equal(alone.singleStatements, asks.length, 'concurrency 0: one statement per check')
  // The answers cover every reason (the comparison below means something).
  t.same(new Set(expected.map((r) => r.reason)), new Set(['subscribed', 'opted_out', 'platform_stopped', 'not_opted_in', 'opt_in_not_required']))

  // All at once, three times over, shuffled: fewer statements, the same answers.
  const shared = createCheckService(sql, { concurrency: 1, maxItems: 7 })
  const order = [...asks.keys(), ...asks.keys(), ...asks.keys()].sort((a, b) => ((a * 7919) % 101) - ((b * 7919) % 101))
  const got = await Promise.all(order.map((k) => shared.check(DEFAULT_WORKSPACE_ID, asks[k]!.target, [asks[k]!.ident])))
  got.forEach((r, i) => t.same(r, [expected[order[i]!]], `${asks[order[i]!]!.ident.value} on ${JSON.stringify(asks[order[i]!]!.target)}`))
  t.ok(shared.singleStatements < order.length, `${shared.singleStatements} statements for ${order.length} checks`)
  t.ok(shared.singleStatements >= Math.ceil(order.length / 7), 'no statement holds more than maxItems checks')

  // Over HTTP, concurrently: the app's own service shares statements too.
  const before = ta.app.checks.singleStatements
  const http = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      ta.app.inject({ method: 'GET', url: `/consent/check?phone=${encodeURIComponent(phone((i % 3) + 1))}&subscription_group_id=${g}`, headers: ta.root }),
    ),
  )
  // expected[] of the first target (the group): phone(1), phone(2) and phone(3) at 0, 1 and 3.
  http.forEach((r, i) => t.same(r.json(), expected[[0, 1, 3][i % 3]!], `GET ${phone((i % 3) + 1)}`))
  t.ok(ta.app.checks.singleStatements - before < 30, `${ta.app.checks.singleStatements - before} statements for 30 GETs`)
})

t.test('a shared statement answers errors per target and never mixes workspaces', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const g = await newGroup(ta, ta.root)
  const ws = await newWorkspace(ta)
  const g2 = await newGroup(ta, ws.auth)
  await ta.app.ledger.append(sql, { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }, [
    { identities: [{ type: 'phone', value: phone(1) }], subscriptionGroupId: g, state: 'subscribed', source: 'api' },
  ])
  await ta.app.ledger.append(sql, { workspaceId: ws.id, actor: 'test' }, [
    { identities: [{ type: 'phone', value: phone(1) }], subscriptionGroupId: g2, state: 'unsubscribed', source: 'api' },
  ])
  const svc = createCheckService(sql, { concurrency: 1 })
  const unknown = '00000000-0000-4000-8000-000000000000'
  const ask = (workspaceId: string, group: string) => svc.check(workspaceId, { subscription_group_id: group }, [{ type: 'phone', value: phone(1) }])
  const all = await Promise.allSettled(
    Array.from({ length: 12 }, (_, i) => [() => ask(DEFAULT_WORKSPACE_ID, g), () => ask(ws.id, g2), () => ask(DEFAULT_WORKSPACE_ID, unknown), () => ask(ws.id, g)][i % 4]!()),
  )
  all.forEach((s, i) => {
    const kind = i % 4
    if (kind === 0) t.match(s, { status: 'fulfilled', value: [{ state: 'subscribed', allowed: true }] })
    else if (kind === 1) t.match(s, { status: 'fulfilled', value: [{ state: 'unsubscribed', allowed: false }] })
    // An unknown group, and another workspace's group: not found, whoever shared the statement.
    else t.match(s, { status: 'rejected', reason: { statusCode: 404 } })
  })
})

t.test('a check sees every write acknowledged before it, even while others are in flight', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const g = await newGroup(ta, ta.root)
  const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }
  const target = { subscription_group_id: g }
  let state: 'subscribed' | 'unsubscribed' = 'subscribed'
  for (let round = 0; round < 16; round++) {
    // One statement at a time, then two (the default).
    const svc = createCheckService(sql, { concurrency: round < 8 ? 1 : 2 })
    const ask = (n: number) => svc.check(DEFAULT_WORKSPACE_ID, target, [{ type: 'phone', value: phone(n) }])
    // Checks of other people keep the target's statements busy...
    const noise = Array.from({ length: 8 }, (_, i) => ask(100 + i))
    state = state === 'subscribed' ? 'unsubscribed' : 'subscribed'
    await ta.app.ledger.append(sql, ctx, [{ identities: [{ type: 'phone', value: phone(1) }], subscriptionGroupId: g, state, source: 'api' }])
    // ...and the check sent after the write was acknowledged sees it.
    const [r] = await ask(1)
    t.equal(r!.state, state, `round ${round}`)
    await Promise.all(noise)
  }
})
