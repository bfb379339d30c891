/**
 * GET /audit/events: keyset pages in ledger order with hashes and evidence; the filters of
 * docs/audit.md (merged contacts included under their survivor); 404 for another workspace's ids; scope
 * audit:read; and an auditor key (audit:read only) cannot write through any route.
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { buildTestApp, newGroup, newWorkspace } from '../../helpers/build-app.js'
import { verifyChain } from '../../../src/ledger/hash-chain.js'
import { append, keyWith, phoneItem, sleep } from '../../audit/helpers.js'

interface Ev {
  id: string
  event_id: string
  contact_id: string
  type: string
  source: string
  subscription_group_id: string | null
  state: string | null
  recorded_at: string
  occurred_at: string
  evidence: Record<string, unknown>
  prev_hash: string
  hash: string
  [k: string]: unknown
}

t.test('GET /audit/events', async (t) => {
  const ta = await buildTestApp(t)
  const a = await newWorkspace(ta, 'a')
  const b = await newWorkspace(ta, 'b')
  const g1 = await newGroup(ta, a.auth, { name: 'promos' })
  const g2 = await newGroup(ta, a.auth, { name: 'alerts', category: 'utility' })
  const gb = await newGroup(ta, b.auth)
  const auditor = await keyWith(ta, a.auth, ['audit:read'], 'auditor')

  // 10 phones x 2 groups, then a merge: phone-only contact +14155550109 joins external_id u-1's contact.
  for (let i = 0; i < 10; i++) {
    await append(ta, a.id, [
      phoneItem(`+1415555010${i}`, g1, 'subscribed', { method: 'web_form', evidence: { consent_text: `yes ${i}`, ip: '203.0.113.9' } }),
      phoneItem(`+1415555010${i}`, g2, i % 2 ? 'unsubscribed' : 'subscribed'),
    ])
  }
  await sleep(5)
  const between = new Date().toISOString()
  await sleep(5)
  await append(ta, a.id, [{ identities: [{ type: 'external_id', value: 'u-1' }], subscriptionGroupId: g1, state: 'unsubscribed', source: 'api' }])
  await append(ta, a.id, [{ identities: [{ type: 'external_id', value: 'u-1' }, { type: 'phone', value: '+14155550109' }], subscriptionGroupId: g2, state: 'subscribed', source: 'users_track' }])
  await append(ta, b.id, [phoneItem('+14155550100', gb, 'subscribed')])

  const get = async (query: string, auth = auditor) => ta.app.inject({ url: `/audit/events${query}`, headers: auth })
  const walk = async (query: string, limit: number) => {
    const out: Ev[] = []
    let cursor: string | null = null
    for (let pages = 0; pages < 100; pages++) {
      const sep: string = query ? '&' : '?'
      const r = await get(`${query}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`)
      if (r.statusCode !== 200) throw new Error(r.body)
      const body = r.json() as { events: Ev[]; next_cursor: string | null }
      out.push(...body.events)
      cursor = body.next_cursor
      if (!cursor) return out
    }
    throw new Error('too many pages')
  }

  const all = await walk('', 7)
  const [{ n }] = await ta.app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM consent_events WHERE workspace_id = $1`, [a.id])
  t.equal(all.length, n, 'the walk returns every event of the workspace once')
  t.same(all.map((e) => BigInt(e.id)), [...all.map((e) => BigInt(e.id))].sort((x, y) => (x < y ? -1 : 1)), 'in ledger id order')
  t.equal(new Set(all.map((e) => e.event_id)).size, all.length, 'no duplicates across pages')
  t.ok(all.every((e) => e.workspace_id === a.id), 'only this workspace')
  t.same(all[0]!.evidence, { consent_text: 'yes 0', ip: '203.0.113.9' }, 'evidence as recorded')
  t.match(all[0], { hash: /^[0-9a-f]{64}$/, prev_hash: '0'.repeat(64), occurred_at: /Z$/, recorded_at: /\.\d{3}Z$/ })
  // The pages carry everything needed to re-verify every chain.
  const byContact = new Map<string, Ev[]>()
  for (const e of all) byContact.set(e.contact_id, [...(byContact.get(e.contact_id) ?? []), e])
  for (const [c, evs] of byContact) {
    const v = verifyChain(evs.map((e) => ({ ...e, occurred_at: new Date(e.occurred_at), recorded_at: new Date(e.recorded_at) })) as never)
    if (!v.ok) t.fail(`chain of ${c} does not verify from /audit/events: ${v.reason}`)
  }
  t.ok(all.some((e) => e.type === 'contact_merged') && all.some((e) => e.type === 'contact_absorbed'), 'merge events are listed')

  t.test('filters', async (t) => {
    const byPhone = await walk('?phone=%2B14155550103', 2)
    t.equal(byPhone.length, 2)
    t.ok(byPhone.every((e) => e.contact_id === byPhone[0]!.contact_id))
    t.equal((await walk('?phone=14155550103', 50)).length, 2, 'wa_id digits name the same phone')

    // u-1 absorbed the phone-only contact of +14155550109: its events count for u-1.
    const u1 = await walk('?external_id=u-1', 50)
    const contacts = new Set(u1.map((e) => e.contact_id))
    t.equal(contacts.size, 2, 'the survivor and the contact merged into it')
    t.equal(u1.filter((e) => e.type === 'consent').length, 4, "both histories' consent events")
    const viaPhone = await walk('?phone=%2B14155550109', 50)
    t.same(viaPhone.map((e) => e.id), u1.map((e) => e.id), 'the phone now names the survivor')
    const absorbed = u1.find((e) => e.type === 'contact_absorbed')!.contact_id
    const own = await walk(`?contact_id=${absorbed}`, 50)
    t.ok(own.length === 3 && own.every((e) => e.contact_id === absorbed), 'a merged-away contact id selects its own events')

    const g2Only = await walk(`?subscription_group_id=${g2}`, 50)
    t.equal(g2Only.length, 11)
    t.ok(g2Only.every((e) => e.subscription_group_id === g2))
    const merges = await walk('?source=merge', 50)
    t.equal(merges.length, 2)
    t.same((await walk('?type=contact_merged', 50)).map((e) => e.type), ['contact_merged'])
    const after = await walk(`?from=${encodeURIComponent(between)}`, 50)
    t.ok(after.length === 4 && after.every((e) => e.recorded_at >= between), '`from` is on recorded_at')
    const before = await walk(`?to=${encodeURIComponent(between)}`, 50)
    t.equal(before.length + after.length, all.length, '[from, to) halves partition the ledger')
    t.same((await walk(`?phone=%2B14155550101&subscription_group_id=${g2}`, 50)).map((e) => e.state), ['unsubscribed'], 'filters combine with AND')
    t.same(await walk('?phone=%2B14155550101&external_id=u-1', 50), [], 'two different contacts: nothing')
  })

  t.test('errors and isolation', async (t) => {
    const code = async (q: string, auth = auditor) => {
      const r = await get(q, auth)
      return `${r.statusCode} ${r.json().code ?? ''}`.trim()
    }
    t.equal(await code('?cursor=bm9wZQ'), '400 invalid_cursor')
    t.equal(await code('?limit=0'), '400 validation_failed')
    t.equal(await code('?limit=1001'), '400 validation_failed')
    t.equal(await code('?from=yesterday'), '400 validation_failed')
    t.equal(await code(`?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z`), '400 invalid_period')
    t.equal(await code('?phone=12'), '400 invalid_phone')
    t.equal(await code('?source=telepathy'), '400 validation_failed')
    t.equal(await code('?unknown=1'), '400 validation_failed')
    t.equal(await code(`?contact_id=${randomUUID()}`), '404 not_found')
    t.equal(await code('?external_id=nobody'), '404 not_found')
    t.equal(await code(`?subscription_group_id=${randomUUID()}`), '404 not_found')
    // Workspace b: a's ids are unknown there, exactly like ids that never existed.
    t.equal(await code(`?contact_id=${all[0]!.contact_id}`, b.auth), '404 not_found')
    t.equal(await code(`?subscription_group_id=${g1}`, b.auth), '404 not_found')
    t.equal(await code('?external_id=u-1', b.auth), '404 not_found')
    const bs = (await get('', b.auth)).json().events as Ev[]
    t.equal(bs.length, 1, "b sees only its own event (its +14155550100 is another contact than a's)")
    t.not(bs[0]!.contact_id, all[0]!.contact_id)
  })

  t.test('scopes', async (t) => {
    t.equal((await ta.app.inject({ url: '/audit/events' })).statusCode, 401)
    const reader = await keyWith(ta, a.auth, ['consent:read', 'consent:write'], 'app')
    for (const url of ['/audit/events', '/audit/export', '/audit/state?phone=%2B14155550101', '/audit/checkpoints', '/audit/proof?phone=%2B14155550101']) {
      t.equal((await ta.app.inject({ url, headers: reader })).statusCode, 403, `GET ${url} needs audit:read`)
    }
    t.equal((await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: reader })).statusCode, 403)
    t.equal((await ta.app.inject({ method: 'POST', url: '/audit/checkpoints', headers: auditor })).statusCode, 403, 'signing a checkpoint needs admin')
    t.equal((await get('', a.auth)).statusCode, 200, 'admin implies audit:read')
  })

  t.test('an auditor key cannot write anything', async (t) => {
    const spec = ta.app.swagger() as { paths: Record<string, Record<string, { security?: unknown[] }>> }
    const writes: string[] = []
    for (const [path, ops] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (!['post', 'put', 'patch', 'delete'].includes(method)) continue
        if (Array.isArray(op.security) && op.security.length === 0) continue // public (signature-authenticated webhooks)
        if (method === 'post' && path === '/audit/verify') continue // a read, with scope audit:read
        writes.push(`${method.toUpperCase()} ${path}`)
      }
    }
    t.ok(writes.length >= 15, `found ${writes.length} write routes`)
    const count = async () =>
      (await ta.app.database.sql.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM consent_events) + (SELECT count(*) FROM api_keys) + (SELECT count(*) FROM subscription_groups)
              + (SELECT count(*) FROM checkpoints) + (SELECT count(*) FROM contacts) + (SELECT count(*) FROM workspaces) AS n`,
      ))[0]!.n
    const before = await count()
    for (const w of writes) {
      const [method, path] = w.split(' ') as [string, string]
      const url = path.replace(/\{[^}]+\}/g, randomUUID())
      const r = await ta.app.inject({ method: method as 'POST', url, headers: { ...auditor, 'content-type': 'application/json' }, payload: '{}' })
      t.equal(r.statusCode, 403, `${w} refuses an audit:read key (${r.statusCode})`)
    }
    t.equal(await count(), before, 'nothing changed')
  })
})
