/**
 * The batch processor driven by hand (the app's own worker stopped): progress per batch, rows
 * repeating rows of earlier batches, resuming after a batch that rolled back, and the embedded
 * database.
 */
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { buildTestApp, newGroup, ROOT_KEY, type TestApp } from '../helpers/build-app.js'
import { createReadAhead, processNextBatch, type ProcessorDeps } from '../../src/import/processor.js'
import { createImportWorker } from '../../src/import/worker.js'
import { errorsCsv, upload } from '../routes/imports/helpers.js'

async function stoppedWorker(ta: Pick<TestApp, 'app'>): Promise<ProcessorDeps> {
  await ta.app.importWorker.stop()
  return { sql: ta.app.database.sql, ledger: ta.app.ledger, log: ta.app.log }
}

/** The same deps with a ledger that throws after its statements ran (the transaction rolls back). */
const crashingAfterAppend = (deps: ProcessorDeps): ProcessorDeps => ({
  ...deps,
  ledger: {
    ...deps.ledger,
    appendValidated: async (sql, v) => {
      await deps.ledger.appendValidated(sql, v)
      throw new Error('crash after the append')
    },
  },
})

const status = async (ta: Pick<TestApp, 'app'>, auth: { authorization: string }, id: string) =>
  (await ta.app.inject({ url: `/imports/${id}`, headers: auth })).json()

t.test('batches commit their progress; rows repeating earlier rows are duplicates, across batches too', async (t) => {
  const ta = await buildTestApp(t)
  const deps = await stoppedWorker(ta)
  const G = await newGroup(ta, ta.root)
  const csv = [
    'phone,subscription_state,occurred_at',
    '+14155558001,subscribed,2025-01-01T00:00:00Z', // 2
    '+1415,subscribed,', // 3 invalid
    '+14155558003,subscribed,2025-01-01T00:00:00Z', // 4
    '+14155558001,subscribed,2025-01-01T00:00:00Z', // 5 repeats 2 (another batch)
    '+1415,subscribed,', // 6 repeats the refused row 3: a duplicate too
    '+14155558003,subscribed,2025-01-01T00:00:00Z', // 7 repeats 4
    '+14155558003,unsubscribed,2025-01-01T00:00:00Z', // 8 another state: applies
  ].join('\n')
  const r = await upload(ta, ta.root, csv, `?subscription_group_id=${G}`)
  const id = r.json().id

  const seen: [number, string, number][] = []
  for (;;) {
    const out = await processNextBatch(deps, () => 2)
    if (!out) break
    const s = await status(ta, ta.root, id)
    seen.push([out.processed, s.status, s.rows_processed])
  }
  t.same(seen, [
    [2, 'running', 2],
    [2, 'running', 4],
    [2, 'running', 6],
    [1, 'completed', 7],
  ])
  t.match(await status(ta, ta.root, id), { rows_applied: 3, rows_rejected: 1, rows_duplicate: 3, rows_total: 7 })
  t.equal(
    await errorsCsv(ta, ta.root, id),
    [
      'row,column,code,message',
      '3,phone,invalid_phone,"phone ""+1415"" is not a valid phone number"',
      '5,,duplicate,repeats row 2',
      '6,,duplicate,repeats row 3',
      '7,,duplicate,repeats row 4',
      '',
    ].join('\n'),
  )
})

t.test('a batch that fails rolls back whole; the next attempt resumes at the committed row', async (t) => {
  const ta = await buildTestApp(t)
  const deps = await stoppedWorker(ta)
  const G = await newGroup(ta, ta.root)
  let csv = 'phone,subscription_state\n'
  for (let i = 0; i < 10; i++) csv += `+1415555900${i},subscribed\n`
  const id = (await upload(ta, ta.root, csv, `?subscription_group_id=${G}`)).json().id

  await processNextBatch(deps, () => 4) // rows 2-5 committed
  // A ledger that fails after writing: the batch's events, keys and progress all roll back.
  const failing = crashingAfterAppend(deps)
  await t.rejects(processNextBatch(failing, () => 4), /crash after the append/)
  t.match(await status(ta, ta.root, id), { status: 'running', rows_processed: 4, rows_applied: 4 })
  while (await processNextBatch(deps, () => 4));
  t.match(await status(ta, ta.root, id), { status: 'completed', rows_processed: 10, rows_applied: 10, rows_duplicate: 0 })
  const [n] = await ta.app.database.sql.query<{ events: number; keys: number }>(
    `SELECT (SELECT count(*)::int FROM consent_events WHERE actor = $1) AS events,
            (SELECT count(DISTINCT key)::int FROM ledger_dedupe WHERE key LIKE $2) AS keys`,
    [`import:${id}`, `import:${id}:%`],
  )
  t.same(n, { events: 10, keys: 10 }, 'every row applied exactly once')
})

t.test('two imports are taken oldest first; a locked import is skipped by another worker', async (t) => {
  const ta = await buildTestApp(t)
  const deps = await stoppedWorker(ta)
  const G = await newGroup(ta, ta.root)
  const a = (await upload(ta, ta.root, 'phone,subscription_state\n+14155559101,subscribed\n', `?subscription_group_id=${G}`)).json().id
  const b = (await upload(ta, ta.root, 'phone,subscription_state\n+14155559102,subscribed\n', `?subscription_group_id=${G}`)).json().id
  // Hold a's row lock in another transaction, as a second instance busy with a's batch would.
  let release!: () => void
  const held = new Promise<void>((r) => (release = r))
  let locked!: () => void
  const isLocked = new Promise<void>((r) => (locked = r))
  const holder = ta.app.database.sql.tx(async (tx) => {
    await tx.query(`SELECT 1 FROM imports WHERE id = $1 FOR UPDATE`, [a])
    locked()
    await held
  })
  await isLocked
  const out = await processNextBatch(deps, () => 10)
  t.equal(out?.imp.id, b, 'the other worker takes b')
  release()
  await holder
  t.equal((await processNextBatch(deps, () => 10))?.imp.id, a)
})

t.test('the embedded database (PGlite) imports too', async (t) => {
  const app = await buildApp(loadConfig({ DATA_DIR: 'memory://', CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent' }))
  t.teardown(() => app.close())
  await app.ready()
  const root = { authorization: `Bearer ${ROOT_KEY}` }
  const g = await app.inject({ method: 'POST', url: '/subscription-groups', headers: root, payload: { name: 'M', channel: 'whatsapp', category: 'marketing' } })
  const G = g.json().id
  let csv = 'phone,subscription_state,tier\n'
  for (let i = 0; i < 300; i++) csv += `+1415556${String(i).padStart(4, '0')},subscribed,t${i % 3}\n`
  csv += '+1415,subscribed,x\n'
  const r = await app.inject({ method: 'POST', url: `/imports?subscription_group_id=${G}`, headers: { ...root, 'content-type': 'text/csv' }, payload: csv })
  t.equal(r.statusCode, 202, r.body)
  let s
  for (const until = Date.now() + 120_000; Date.now() < until; ) {
    s = (await app.inject({ url: r.headers.location as string, headers: root })).json()
    if (s.status === 'completed') break
    await new Promise((res) => setTimeout(res, 50))
  }
  t.match(s, { status: 'completed', rows_total: 301, rows_applied: 300, rows_rejected: 1 })
  const e = await app.inject({ url: `${r.headers.location}/errors`, headers: root })
  t.equal(e.body, 'row,column,code,message\n302,phone,invalid_phone,"phone ""+1415"" is not a valid phone number"\n')
})

t.test('the worker isolates a row that keeps failing, refuses it, and finishes the import', async (t) => {
  const ta = await buildTestApp(t)
  const deps = await stoppedWorker(ta)
  const G = await newGroup(ta, ta.root)
  let csv = 'phone,subscription_state\n'
  for (let i = 0; i < 9; i++) csv += `+1415555910${i},subscribed\n`
  const id = (await upload(ta, ta.root, csv, `?subscription_group_id=${G}`)).json().id
  // A ledger that always fails on the row 5 of the file, as a bug or a bad value would.
  const worker = createImportWorker(
    {
      ...deps,
      ledger: {
        ...deps.ledger,
        appendValidated: async (sql, v) => {
          if (v.units.some((u) => u.items.some((i) => i.evidence?.row === 5))) throw new Error('boom on row 5')
          return deps.ledger.appendValidated(sql, v)
        },
      },
    },
    { batchSize: 4, pollMs: 20 },
  )
  worker.start()
  t.teardown(() => worker.stop())
  let s
  for (const until = Date.now() + 120_000; Date.now() < until; ) {
    s = await status(ta, ta.root, id)
    if (s.status === 'completed') break
    await new Promise((r) => setTimeout(r, 50))
  }
  t.match(s, { status: 'completed', rows_total: 9, rows_applied: 8, rows_rejected: 1 })
  t.match(await errorsCsv(ta, ta.root, id), /^row,column,code,message\n5,,processing_error,the row could not be processed: boom on row 5\n$/)
})

t.test('read ahead: the next batch is read and validated during the current one, used only where it starts', async (t) => {
  const ta = await buildTestApp(t)
  const deps = await stoppedWorker(ta)
  const G = await newGroup(ta, ta.root)
  let csv = 'phone,subscription_state\n'
  for (let i = 0; i < 14; i++) csv += i === 6 ? '+1415,subscribed\n' : `+1415555${9300 + i},subscribed\n`
  csv += '+14155559300,unsubscribed\n' // 16: repeats row 2's phone with another state: applies
  csv += '+14155559301,subscribed\n' // 17: repeats row 3: a duplicate
  const id = (await upload(ta, ta.root, csv, `?subscription_group_id=${G}`)).json().id
  const ahead = createReadAhead(deps.sql, deps.ledger)
  const failing = crashingAfterAppend(deps)
  const steps: [boolean, number, number][] = []
  const step = async (d: ProcessorDeps, size: number) => {
    const out = await processNextBatch(d, () => size, [], ahead)
    steps.push([out!.ahead, out!.processed, (await status(ta, ta.root, id)).rows_processed])
  }
  await step(deps, 4) // rows 2-5, read in its transaction; rows 6-9 read ahead
  await step(deps, 4) // rows 6-9 from the read-ahead (row 8 refused there); 10-13 ahead
  await t.rejects(processNextBatch(failing, () => 4, [], ahead), /crash after the append/) // 10-13 roll back; 14-17 ahead
  await step(deps, 4) // resumes at row 10: the read-ahead of 14-17 does not start there, so it is dropped
  await step(deps, 3) // 14-16: the read-ahead (4 rows) has another size, dropped too
  await step(deps, 3) // 17, ahead
  t.same(steps, [
    [false, 4, 4],
    [true, 4, 8],
    [false, 4, 12],
    [false, 3, 15],
    [true, 1, 16],
  ])
  t.equal(await processNextBatch(deps, () => 3, [], ahead), null)
  t.match(await status(ta, ta.root, id), { status: 'completed', rows_total: 16, rows_applied: 14, rows_rejected: 1, rows_duplicate: 1 })
  t.equal(
    await errorsCsv(ta, ta.root, id),
    'row,column,code,message\n8,phone,invalid_phone,"phone ""+1415"" is not a valid phone number"\n17,,duplicate,repeats row 3\n',
  )
  const [n] = await ta.app.database.sql.query<{ events: number; keys: number }>(
    `SELECT (SELECT count(*)::int FROM consent_events WHERE actor = $1) AS events,
            (SELECT count(DISTINCT key)::int FROM ledger_dedupe WHERE key LIKE $2) AS keys`,
    [`import:${id}`, `import:${id}:%`],
  )
  t.same(n, { events: 14, keys: 14 }, 'every applied row exactly once')
})
