/**
 * AppendItem.attributes: the ledger writes the attributes of APPLIED items with the contact row it
 * writes anyway (the INSERT of a new contact, the chain-head UPDATE of an existing one); a
 * duplicate or rejected item changes nothing.
 */
import t from 'tap'
import { buildTestApp, newGroup } from '../helpers/build-app.js'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import type { AppendItem } from '../../src/ledger/types.js'

const ctx = { workspaceId: DEFAULT_WORKSPACE_ID, actor: 'test' }

t.test('attributes of applied items, new and existing contacts', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const ledger = ta.app.ledger
  const g = await newGroup(ta, ta.root)
  const attrsOf = async (phone: string) => {
    const [r] = await sql.query<{ attributes: Record<string, string> }>(
      `SELECT c.attributes FROM contacts c JOIN identities i ON i.contact_id = c.id AND i.workspace_id = c.workspace_id
        WHERE i.type = 'phone' AND i.value = $1`,
      [phone],
    )
    return r?.attributes
  }
  const item = (phone: string, over: Partial<AppendItem> = {}): AppendItem => ({
    identities: [{ type: 'phone', value: phone }],
    subscriptionGroupId: g,
    state: 'subscribed',
    source: 'api',
    ...over,
  })

  // New contacts: two items for the same new person in one batch, the later wins per key.
  const r1 = await ledger.append(sql, ctx, [
    item('+14155550101', { attributes: { tier: 'gold', city: 'SF' }, dedupeKey: 'k1' }),
    item('+14155550102', { attributes: { tier: 'silver' } }),
    item('+14155550101', { attributes: { tier: 'platinum' }, occurredAt: '2026-01-01T00:00:00Z' }),
    item('+14155550103'),
  ])
  t.same(r1.map((r) => r.status), ['applied', 'applied', 'applied', 'applied'])
  t.same(await attrsOf('+14155550101'), { tier: 'platinum', city: 'SF' })
  t.same(await attrsOf('+14155550102'), { tier: 'silver' })
  t.same(await attrsOf('+14155550103'), {})

  // Existing contacts: merged into what they have.
  await ledger.append(sql, ctx, [item('+14155550101', { attributes: { city: 'LA', lang: 'en' } }), item('+14155550103', { attributes: { a: '1' } })])
  t.same(await attrsOf('+14155550101'), { tier: 'platinum', city: 'LA', lang: 'en' })
  t.same(await attrsOf('+14155550103'), { a: '1' })

  // A duplicate (same exactly-once key) and a rejected item change nothing.
  const r3 = await ledger.append(sql, ctx, [
    item('+14155550101', { attributes: { tier: 'dup' }, dedupeKey: 'k1' }),
    item('+14155550102', { attributes: { tier: 'bad' }, state: 'maybe' }),
  ])
  t.same(r3.map((r) => r.status), ['duplicate', 'rejected'])
  t.same(await attrsOf('+14155550101'), { tier: 'platinum', city: 'LA', lang: 'en' })
  t.same(await attrsOf('+14155550102'), { tier: 'silver' })
})
