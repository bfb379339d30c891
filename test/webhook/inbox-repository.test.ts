/**
 * Inbox inserts under group commit: payloads arriving together are committed by one INSERT, each
 * byte-exact with its own id (in arrival order), and a payload the database refuses does not take
 * the others of its statement down.
 */
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.js'
import { createInboxRepository } from '../../src/webhook/inbox-repository.js'

t.test('grouped inbox inserts', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const read = (id: string) =>
    sql.query<{ raw_body: string; body_sha256: string; phone_number_ids: string[]; status: string; last_error: string | null }>(
      `SELECT raw_body, body_sha256, phone_number_ids, status, last_error FROM webhook_inbox WHERE id = $1`,
      [id],
    )

  t.test('payloads arriving together share statements, each stored exactly, ids in arrival order', async (t) => {
    const inbox = createInboxRepository(sql, { groupConcurrency: 1, groupMax: 100 })
    const n = 30
    const bodies = Array.from({ length: n }, (_, i) => `{"n":${i},"q":"\\"quoted\\" {braces} back\\\\slash ü ✓ 🚀","e":""}`)
    const ids = (
      await Promise.all(
        bodies.map((b, i) => inbox.insert(b, `sha-${i}`, i % 3 === 0 ? [] : [`pn-${i}`, 'pn,"odd"'], i === 7 ? 'failed' : 'pending', i === 7 ? 'malformed_json: x' : null)),
      )
    ).map((s) => s.id)
    t.ok(inbox.insertStatements < n, `${n} payloads in ${inbox.insertStatements} statements`)
    t.same(
      ids.map(Number),
      ids.map(Number).sort((a, b) => a - b),
      'ids follow arrival order',
    )
    t.equal(new Set(ids).size, n)
    for (let i = 0; i < n; i++) {
      t.same(await read(ids[i]!), [
        {
          raw_body: bodies[i],
          body_sha256: `sha-${i}`,
          phone_number_ids: i % 3 === 0 ? [] : [`pn-${i}`, 'pn,"odd"'],
          status: i === 7 ? 'failed' : 'pending',
          last_error: i === 7 ? 'malformed_json: x' : null,
        },
      ])
    }
  })

  t.test('a refused payload fails alone', async (t) => {
    const inbox = createInboxRepository(sql, { groupConcurrency: 1, groupMax: 100 })
    const settled = await Promise.allSettled(
      // body_sha256 is NOT NULL: the 4th cannot be stored.
      Array.from({ length: 8 }, (_, i) => inbox.insert(`{"r":${i}}`, (i === 3 ? null : `r-${i}`) as string, [])),
    )
    settled.forEach((s, i) => t.equal(s.status, i === 3 ? 'rejected' : 'fulfilled', `payload ${i}`))
    for (const [i, s] of settled.entries()) {
      if (s.status === 'fulfilled') t.equal((await read(s.value.id))[0]!.raw_body, `{"r":${i}}`)
    }
    const [{ n }] = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_inbox WHERE raw_body LIKE '{"r":%'`)) as [{ n: number }]
    t.equal(n, 7, 'the other seven stored once each')
  })

  t.test('a body submitted again (in one grouped statement or later) is stored once per tenancy', async (t) => {
    const inbox = createInboxRepository(sql, { groupConcurrency: 1, groupMax: 100 })
    const ws = (await sql.query<{ id: string }>(`INSERT INTO workspaces (name) VALUES ('dup') RETURNING id::text AS id`))[0]!.id
    const got = await Promise.all(Array.from({ length: 12 }, (_, i) => inbox.insert(`{"d":${i % 3}}`, `d-${i % 3}`, [], 'pending', null, i >= 9 ? ws : null)))
    t.ok(inbox.insertStatements < 12, 'grouped')
    const byBody = (k: number) => new Set(got.filter((_, i) => i < 9 && i % 3 === k).map((g) => g.id))
    t.same([byBody(0).size, byBody(1).size, byBody(2).size], [1, 1, 1], 'one row per body on the operator URL')
    t.same(got.filter((g) => !g.duplicate).length, 6, '3 bodies on the operator URL, 3 on the workspace URL')
    t.notOk(got.slice(9).some((g) => byBody(0).has(g.id) || byBody(1).has(g.id) || byBody(2).has(g.id)), 'another tenancy is another row')
    const later = await inbox.insert('{"d":0}', 'd-0', [])
    t.same(later, { id: [...byBody(0)][0], status: 'pending', duplicate: true })
    const [{ n }] = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_inbox WHERE raw_body LIKE '{"d":%'`)) as [{ n: number }]
    t.equal(n, 6)
  })

  t.test('concurrency 0: one statement per payload', async (t) => {
    const inbox = createInboxRepository(sql, { groupConcurrency: 0 })
    await Promise.all(Array.from({ length: 5 }, (_, i) => inbox.insert(`{"z":${i}}`, `z-${i}`, [])))
    t.equal(inbox.insertStatements, 5)
  })
})
