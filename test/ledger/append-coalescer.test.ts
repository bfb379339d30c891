/**
 * Group commit (src/ledger/append-coalescer.ts): requests that arrive while their workspace's
 * transactions run share the next transaction and append, each keeps its own origin (actor,
 * request id) and results, a failure of a shared transaction never becomes another request's, and
 * a merge in a shared batch is redone one request at a time.
 */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'
import { DEFAULT_WORKSPACE_ID } from '../../src/auth/api-keys.js'
import { createAppendCoalescer } from '../../src/ledger/append-coalescer.js'
import { TWO_LEVEL_MAX_KEYS } from '../../src/ledger/contact-resolver.js'
import { verifyChain } from '../../src/ledger/hash-chain.js'
import { diffProjection } from '../../src/ledger/projection.js'
import type { AppendItem, ItemResult } from '../../src/ledger/types.js'
import type { Sql } from '../../src/db/sql.js'

t.test('append coalescer', async (t) => {
  const ta = await buildTestApp(t)
  const { sql } = ta.app.database
  const g = await newGroup(ta, ta.root)
  const item = (phone: string, over: Partial<AppendItem> = {}): AppendItem => ({
    identities: [{ type: 'phone', value: phone }],
    subscriptionGroupId: g,
    state: 'subscribed',
    source: 'api',
    ...over,
  })
  const ctx = (requestId: string, workspaceId = DEFAULT_WORKSPACE_ID) => ({ workspaceId, actor: `key:${requestId}`, requestId })
  /** Events of a request, with the time their transaction recorded them. */
  const eventsOf = (requestId: string) =>
    sql.query<{ actor: string; recorded_at: Date; state: string; contact_id: string; type: string }>(
      `SELECT actor, recorded_at, state, contact_id, type FROM consent_events WHERE request_id = $1 ORDER BY id`,
      [requestId],
    )
  const echo = async (_tx: Sql, results: ItemResult[]) => results

  t.test('requests waiting for a busy workspace share one transaction, each with its own origin and results', async (t) => {
    const groups = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 1000 })
    const n = 12
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        groups.submit({
          ctx: ctx(`share-${i}`),
          // Request 5 names an unknown group: only its own item is rejected.
          items: [item(`+1415555${String(1000 + i)}`, i === 5 ? { subscriptionGroupId: '00000000-0000-7000-8000-000000000000' } : {})],
          finish: echo,
        }),
      ),
    )
    t.equal(groups.grouped, n - 1, 'the first ran alone at once; the other 11 waited and went together')
    answers.forEach((a, i) => t.match(a, [{ status: i === 5 ? 'rejected' : 'applied' }], `request ${i}`))
    const times = new Set<number>()
    for (let i = 0; i < n; i++) {
      const ev = await eventsOf(`share-${i}`)
      if (i === 5) {
        t.equal(ev.length, 0, 'the rejected item wrote nothing')
        continue
      }
      t.equal(ev.length, 1, `request ${i}: one event`)
      t.equal(ev[0]!.actor, `key:share-${i}`, `request ${i}: its own actor`)
      t.equal(ev[0]!.contact_id, (answers[i]![0] as { contact_id: string }).contact_id)
      if (i > 0) times.add(ev[0]!.recorded_at.getTime())
    }
    t.equal(times.size, 1, 'the grouped requests were recorded by one transaction')
    // Every chain the shared transaction extended verifies up to its contact's head.
    const contacts = await sql.query<{ id: string; chain_head: string; chain_length: number }>(
      `SELECT id, chain_head, chain_length FROM contacts WHERE id IN (SELECT contact_id FROM consent_events WHERE request_id LIKE 'share-%')`,
    )
    t.equal(contacts.length, n - 1)
    for (const c of contacts) {
      const v = verifyChain(await sql.query<never>(`SELECT * FROM consent_events WHERE contact_id = $1 ORDER BY id`, [c.id]))
      t.ok(v.ok && v.head === c.chain_head && v.length === c.chain_length, `chain of ${c.id}`)
    }
    t.same(await diffProjection(sql, DEFAULT_WORKSPACE_ID), { missing: [], wrong: [], extra: [] })
  })

  t.test("one request's failure is not another's: a failed shared transaction reruns each alone", async (t) => {
    const groups = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 1000 })
    const runs = new Map<number, number>()
    const settled = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        groups.submit({
          ctx: ctx(`fail-${i}`),
          items: [item(`+1415555${String(2000 + i)}`)],
          finish: async (tx, results) => {
            runs.set(i, (runs.get(i) ?? 0) + 1)
            // Its own write, then a failure: rolls back the shared transaction.
            await tx.query(`SELECT 1`)
            if (i === 3) throw new Error('request 3 fails')
            return results
          },
        }),
      ),
    )
    settled.forEach((s, i) => t.equal(s.status, i === 3 ? 'rejected' : 'fulfilled', `request ${i}`))
    t.equal(groups.grouped, 0, 'no shared transaction committed')
    t.equal(runs.get(0), 1, 'the first ran alone at once')
    t.equal(runs.get(1), 2, 'a request before the failing one in the batch: its finish ran in the batch, then again alone')
    t.equal(runs.get(4), 1, 'a request after it: only alone')
    for (let i = 0; i < 6; i++) t.equal((await eventsOf(`fail-${i}`)).length, i === 3 ? 0 : 1, `request ${i}: events committed once`)
  })

  t.test('a shared batch whose COMMIT fails is not run again (it might have committed)', async (t) => {
    // A deferred constraint trigger: the error comes from COMMIT, after every statement succeeded.
    await sql.query(`CREATE TABLE commit_fails (x int)`)
    await sql.query(`CREATE FUNCTION commit_fails_raise() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$`)
    await sql.query(
      `CREATE CONSTRAINT TRIGGER commit_fails_check AFTER INSERT ON commit_fails DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION commit_fails_raise()`,
    )
    const groups = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 1000 })
    const runs = new Map<number, number>()
    const settled = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) =>
        groups.submit({
          ctx: ctx(`cf-${i}`),
          items: [item(`+1415555${String(7000 + i)}`)],
          finish: async (tx, results) => {
            runs.set(i, (runs.get(i) ?? 0) + 1)
            if (i === 2) await tx.query(`INSERT INTO commit_fails VALUES (1)`)
            return results
          },
        }),
      ),
    )
    t.same(
      settled.map((s) => s.status),
      ['fulfilled', 'rejected', 'rejected', 'rejected'],
      'the first ran alone; the batch of the other three failed at COMMIT',
    )
    t.same([...runs.entries()].sort(), [[0, 1], [1, 1], [2, 1], [3, 1]], 'no finish ran twice')
    for (let i = 1; i < 4; i++) t.equal((await eventsOf(`cf-${i}`)).length, 0, `request ${i}: nothing committed`)
  })

  t.test('a shared batch whose write PostgreSQL refuses with the COMMIT (sent together) reruns each alone', async (t) => {
    // The ledger's write goes out with the COMMIT (Sql.queryLast): a refused write means the
    // COMMIT rolled back, so the batch failed before committing and may run again.
    await sql.query(`CREATE FUNCTION refuse_wf2() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.request_id = 'wf-2' THEN RAISE EXCEPTION 'refused write' USING ERRCODE = 'P0001'; END IF; RETURN NEW; END $$`)
    await sql.query(`CREATE TRIGGER refuse_wf2 BEFORE INSERT ON consent_events FOR EACH ROW EXECUTE FUNCTION refuse_wf2()`)
    t.teardown(() => sql.query(`DROP TRIGGER refuse_wf2 ON consent_events`))
    const groups = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 1000 })
    const runs = new Map<number, number>()
    const settled = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) =>
        groups.submit({
          ctx: ctx(`wf-${i}`),
          items: [item(`+1415555${String(7100 + i)}`)],
          finish: async (_tx, results) => (runs.set(i, (runs.get(i) ?? 0) + 1), results),
        }),
      ),
    )
    t.same(
      settled.map((s) => s.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
      'the first ran alone; the batch of the other three failed at its write and each ran again alone',
    )
    t.match((settled[2] as PromiseRejectedResult).reason, { code: 'P0001' })
    t.same([...runs.entries()].sort(), [[0, 1], [1, 2], [2, 2], [3, 2]], 'each finish ran in the batch, then alone')
    for (let i = 0; i < 4; i++) t.equal((await eventsOf(`wf-${i}`)).length, i === 2 ? 0 : 1, `request ${i}: events committed once`)
  })

  t.test('a merge in a shared batch is redone request by request, its events attributed to its request', async (t) => {
    const groups = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 1000 })
    // Two contacts, then a request showing both identities: a merge.
    await ta.app.ledger.append(sql, ctx('m-setup'), [item('+14155553001'), { ...item('+14155553002'), identities: [{ type: 'external_id', value: 'merge-me' }] }])
    const [first, ...rest] = await Promise.all([
      groups.submit({ ctx: ctx('m-0'), items: [item('+14155553010')], finish: echo }),
      groups.submit({ ctx: ctx('m-1'), items: [item('+14155553011')], finish: echo }),
      groups.submit({
        ctx: ctx('m-2'),
        items: [{ ...item('+14155553001'), identities: [{ type: 'external_id', value: 'merge-me' }, { type: 'phone', value: '+14155553001' }] }],
        finish: echo,
      }),
      groups.submit({ ctx: ctx('m-3'), items: [item('+14155553013')], finish: echo }),
    ])
    t.match(first, [{ status: 'applied' }])
    rest.forEach((r) => t.match(r, [{ status: 'applied' }]))
    t.equal(groups.grouped, 0, 'the batch with the merge did not commit as one')
    const merge = await eventsOf('m-2')
    t.ok(merge.some((e) => e.type !== 'consent'), 'the merge events carry the request that caused them')
    t.ok(merge.every((e) => e.actor === 'key:m-2'))
    for (const id of ['m-1', 'm-3']) t.ok((await eventsOf(id)).every((e) => e.type === 'consent'), `${id}: only its consent`)
    t.same(await diffProjection(sql, DEFAULT_WORKSPACE_ID), { missing: [], wrong: [], extra: [] })
  })

  t.test('larger units: together up to the identity locks\' per-key bound, at most largeConcurrency transactions', async (t) => {
    // Like a /users/track object: an identify item and a consent item for the same phone.
    const unit = (name: string, objects: number, from: number, finish = echo) => ({
      ctx: ctx(name),
      items: Array.from({ length: objects }, (_, i) => {
        const phone = `+1415${2_000_000 + from + i}`
        return [
          { identities: [{ type: 'phone' as const, value: phone }], identifyOnly: true, source: 'users_track' as const },
          item(phone, { source: 'users_track' }),
        ]
      }).flat(),
      finish,
    })
    const stampOf = async (name: string) => new Set((await eventsOf(name)).map((e) => e.recorded_at.getTime()))
    const large = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 100, largeConcurrency: 1 })
    // 75 objects = 75 lock keys: the first runs at once, the four that wait go two by two (150 keys
    // fit the bound of 160, a third would not).
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => large.submit(unit(`lg-${i}`, 75, i * 100))))
    answers.forEach((a, i) => t.equal(a.filter((r) => r.status === 'applied').length, 75, `unit ${i}: its 75 consents applied`))
    t.equal(large.largeBatches, 3, 'three transactions')
    t.equal(large.grouped, 4)
    const stamps = await Promise.all([1, 2, 3, 4].map(async (i) => [...(await stampOf(`lg-${i}`))]))
    stamps.forEach((s, i) => t.equal(s.length, 1, `unit ${i + 1}: one transaction`))
    t.equal(stamps[0]![0], stamps[1]![0], 'units 1 and 2 together')
    t.equal(stamps[2]![0], stamps[3]![0], 'units 3 and 4 together')
    t.not(stamps[1]![0], stamps[2]![0])
    t.equal(TWO_LEVEL_MAX_KEYS, 160)

    // largeConcurrency 1: while one larger unit runs, the next waits for it (without the cap it
    // would run at once and finish first: its append takes milliseconds, the gate opens after 300).
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const done: string[] = []
    const held = large.submit(unit('gate-0', 75, 1_000, async (_tx, results) => (await gate, done.push('gate-0'), results)))
    const queued = large.submit(unit('gate-1', 75, 1_100, async (_tx, results) => (done.push('gate-1'), results)))
    await new Promise((r) => setTimeout(r, 300))
    t.same(done, [], 'the second waits while the first runs')
    open()
    await Promise.all([held, queued])
    t.same(done, ['gate-0', 'gate-1'])

    // Two units of 100 keys would pass the bound together: each goes alone.
    const before = { batches: large.largeBatches, grouped: large.grouped }
    await Promise.all(Array.from({ length: 3 }, (_, i) => large.submit(unit(`solo-${i}`, 100, 3_000 + i * 1000))))
    t.same([large.largeBatches - before.batches, large.grouped - before.grouped], [3, 0], '100 + 100 keys do not go together')
    const off = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 100, largeConcurrency: 0 })
    await Promise.all(Array.from({ length: 3 }, (_, i) => off.submit(unit(`loff-${i}`, 75, 7_000 + i * 100))))
    t.equal(off.grouped, 0, 'largeConcurrency 0: each alone')
  })

  t.test('limits: items per transaction, workspaces apart, concurrency 0 turns grouping off', async (t) => {
    const other = await newWorkspace(ta, 'other')
    const g2 = await newGroup(ta, other.auth)
    const capped = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 2 })
    const big = [item('+14155554100'), item('+14155554101'), item('+14155554102')]
    const [, , , bigAnswer] = await Promise.all([
      ...Array.from({ length: 3 }, (_, i) => capped.submit({ ctx: ctx(`cap-${i}`), items: [item(`+1415555${4000 + i}`)], finish: echo })),
      // More items than a group may hold: runs alone at once, while the small ones wait.
      capped.submit({ ctx: ctx('cap-big'), items: big, finish: echo }),
      ...Array.from({ length: 2 }, (_, i) => capped.submit({ ctx: ctx(`cap-${i + 3}`), items: [item(`+1415555${4003 + i}`)], finish: echo })),
    ])
    t.match(bigAnswer, [{ status: 'applied' }, { status: 'applied' }, { status: 'applied' }])
    // 1 alone, then [1, 2] and [3, 4] two by two; the big one on its own.
    t.equal(capped.grouped, 4)
    t.equal(new Set((await eventsOf('cap-big')).map((e) => e.recorded_at.getTime())).size, 1)
    const stamps = await Promise.all([1, 2, 3, 4].map(async (i) => (await eventsOf(`cap-${i}`))[0]!.recorded_at.getTime()))
    t.equal(stamps[0], stamps[1])
    t.equal(stamps[2], stamps[3])
    t.not(stamps[1], stamps[2], 'two transactions of two')
    t.notOk(stamps.includes((await eventsOf('cap-big'))[0]!.recorded_at.getTime()), 'the big one was not in them')

    const apart = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 1, maxItems: 1000 })
    const mixed = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        apart.submit({
          ctx: ctx(`ws-${i}`, i % 2 ? other.id : DEFAULT_WORKSPACE_ID),
          items: [item(`+1415555${5000 + i}`, { subscriptionGroupId: i % 2 ? g2 : g })],
          finish: echo,
        }),
      ),
    )
    mixed.forEach((r) => t.match(r, [{ status: 'applied' }]))
    t.equal(apart.grouped, 0, 'each workspace had one request running and none waiting')

    const off = createAppendCoalescer(sql, ta.app.ledger, { concurrency: 0, maxItems: 1000 })
    await Promise.all(Array.from({ length: 6 }, (_, i) => off.submit({ ctx: ctx(`off-${i}`), items: [item(`+1415555${6000 + i}`)], finish: echo })))
    t.equal(off.grouped, 0)
    t.equal((await eventsOf('off-5')).length, 1)
  })
})
