/**
 * The ledger refuses what it cannot store exactly, whatever the entry point (API, Braze, webhook,
 * import): docs/input-rules.md. An external_id with an unpaired surrogate used to be hashed as
 * sent and stored as U+FFFD (a permanent false hash_mismatch in /audit/verify, and two distinct ids
 * merged into one identity); evidence nested thousands deep overflowed the stack of the canonical
 * JSON; 2026-02-30 was recorded as 2 March and year 0000 failed in PostgreSQL.
 */
import t from 'tap'
import { buildTestApp, newGroup } from '../helpers/build-app.js'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import type { AppendItem } from '../../src/ledger/types.js'

const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }

function nested(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = { leaf: true }
  for (let i = 0; i < depth; i++) v = { x: v }
  return v
}

t.test('ledger.append refuses unstorable identities, evidence and dates item by item', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const g = await newGroup(ta, ta.root)
  const item = (over: Partial<AppendItem>): AppendItem => ({
    identities: [{ type: 'external_id', value: 'fine' }],
    subscriptionGroupId: g,
    state: 'subscribed',
    source: 'api',
    ...over,
  })
  const res = await ta.app.ledger.append(sql, ctx, [
    item({ identities: [{ type: 'external_id', value: 'a\ud800' }] }),
    item({ identities: [{ type: 'external_id', value: 'a\udbff' }] }),
    item({ identities: [{ type: 'external_id', value: 'a\u0000' }] }),
    item({ evidence: { note: 'x\udc00' } }),
    item({ evidence: { ['k\u0000']: 1 } }),
    item({ evidence: nested(2500) }),
    item({ occurredAt: '2026-02-30T10:00:00Z' }),
    item({ occurredAt: '0000-01-01T00:00:00Z' }),
    item({ evidence: { note: 'emoji 😀 fine' }, occurredAt: '2024-02-29T10:00:00Z' }),
  ])
  t.same(
    res.map((r) => (r.status === 'rejected' ? `${r.code} ${r.pointer ?? ''}`.trim() : r.status)),
    [
      'invalid_identity /external_id',
      'invalid_identity /external_id',
      'invalid_identity /external_id',
      'invalid_evidence /evidence/note',
      'invalid_evidence /evidence/k\ufffd',
      'invalid_evidence ' + '/evidence' + '/x'.repeat(32),
      'invalid_occurred_at /occurred_at',
      'invalid_occurred_at /occurred_at',
      'applied',
    ],
  )
  const ids = await sql.query<{ value: string }>(`SELECT value FROM identities WHERE type = 'external_id' ORDER BY value`)
  t.same(ids.map((r) => r.value), ['fine'], 'only the valid identity exists')

  const verify = await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: ta.root })
  t.equal(verify.statusCode, 200, verify.body)
  t.equal(verify.json().ok, true, 'the ledger verifies: what was hashed is what was stored')
  t.equal(verify.json().events_checked, 1)
})

t.test('two external_ids differing only in an unpaired surrogate never become one stored identity', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const g = await newGroup(ta, ta.root)
  for (const value of ['id\ud800', 'id\udbff']) {
    const [r] = await ta.app.ledger.append(sql, ctx, [{ identities: [{ type: 'external_id', value }], subscriptionGroupId: g, state: 'subscribed', source: 'api' }])
    t.match(r, { status: 'rejected', code: 'invalid_identity' }, JSON.stringify(value))
  }
  const [{ n }] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM contacts`)
  t.equal(n, 0, 'no contact created')
  const verify = await ta.app.inject({ method: 'POST', url: '/audit/verify', headers: ta.root })
  t.equal(verify.json().ok, true, `no false tamper alarm: ${verify.body.slice(0, 300)}`)
})
