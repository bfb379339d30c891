/**
 * SIGTERM under load: every request the service had begun when the signal arrived completes with
 * 2xx and is in the ledger, then the process exits 0.
 *
 * "Begun" is made certain rather than guessed: besides the steady writers, batches of 500 events
 * (each holds a transaction for a while) are sent and the signal is given only once every batch's
 * handler holds its transaction (the database shows the Idempotency-Key's lock) or has been
 * answered, so the batches in flight at the signal are known exactly. The steady writers' requests that were unanswered at the
 * signal are reported too: each must end as a 2xx, a 503 `shutting_down`, or a refused connection
 * (it had not reached a handler), never as another 5xx.
 */
import t from 'tap'
import pg from 'pg'
import { checkLedger, Load, tally } from './load.js'
import { sleep } from './processes.js'
import { AUTH, DATABASE, figures, startStack } from './stack.js'

const BATCHES = 8
const BATCH = 500
t.setTimeout(180_000)

t.test('SIGTERM under load: in-flight requests complete, then exit 0', async (t) => {
  // A grace period long enough for the batches on a loaded machine: what is tested is that
  // everything begun is finished, not how long the operator lets it take.
  const { cluster, service, group } = await startStack(t, 'sigterm', { env: { SHUTDOWN_GRACE_MS: '60000' } })
  const load = new Load(service.base, AUTH, group, { writers: 6, prefix: 'term' }).start()
  t.teardown(() => load.stop())
  await sleep(2_000)

  const batch = (b: number) =>
    fetch(`${service.base}/consent/events`, {
      method: 'POST',
      headers: { ...AUTH, 'content-type': 'application/json', 'idempotency-key': `sigterm-batch-${b}` },
      body: JSON.stringify({
        events: Array.from({ length: BATCH }, (_, i) => ({ phone: `+1415${7_000_000 + b * BATCH + i}`, subscription_group_id: group, state: 'subscribed', method: 'web_form', evidence: { consent_text: 'faults' } })),
      }),
    }).then(
      async (r) => ({ status: r.status, body: (await r.json()) as { applied?: number } }),
      (err: Error) => ({ status: 0, body: { error: err.message } as { applied?: number } }),
    )
  const answered = new Set<number>()
  const batches = Array.from({ length: BATCHES }, (_, b) => batch(b).then((r) => (answered.add(b), r)))
  // Until every batch is inside its handler or already answered. Inside means holding its
  // transaction: each holds the advisory lock of its Idempotency-Key (src/idempotency/idempotency.ts),
  // a 64-bit key that pg_locks shows as classid (high half) and objid (low half).
  const db = new pg.Client({ connectionString: `${cluster.url.replace(/\/postgres$/, '')}/${DATABASE}` })
  await db.connect()
  let inside: number[] = []
  const deadline = Date.now() + 30_000
  for (;;) {
    const { rows } = await db.query<{ b: number }>(
      `SELECT x.b FROM (SELECT b, hashtextextended(w.id || ':sigterm-batch-' || b, 1) AS k FROM workspaces w, generate_series(0, $1 - 1) b WHERE w.name = 'default') x
         JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.classid::bigint = ((x.k >> 32) & 4294967295) AND l.objid::bigint = (x.k & 4294967295)`,
      [BATCHES],
    )
    inside = rows.map((r) => r.b).filter((b) => !answered.has(b))
    if (inside.length + answered.size >= BATCHES || Date.now() > deadline) break
  }
  await db.end()
  const writersInFlight = load.inFlight
  const signalAt = Date.now()
  const exited = service.sigterm()
  const results = await Promise.all(batches)
  const exit = await exited
  const exitMs = Date.now() - signalAt
  await load.stop()

  t.ok(inside.length > 0, `${inside.length} batches were inside their handlers at the signal`)
  const ok = inside.filter((b) => results[b]!.status === 200).length
  t.same(
    inside.map((b) => results[b]!.status),
    inside.map(() => 200),
    `every batch in flight at the signal completed with 200 (${ok} of ${inside.length})`,
  )
  t.same(exit, { code: 0, signal: null }, `then the process exited 0${exit.code === 0 ? '' : `:\n${service.output()}`}`)
  const [{ n: batchEvents }] = (await cluster.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM consent_events WHERE starts_with(idempotency_key, 'sigterm-batch-')`,
    [],
    DATABASE,
  )) as [{ n: number }]
  const acknowledgedBatches = results.filter((r) => r.status === 200).length
  t.equal(batchEvents, acknowledgedBatches * BATCH, 'every event of every acknowledged batch is in the ledger, once')

  const after = tally(load.between(signalAt))
  const ledger = await checkLedger(cluster, DATABASE, load)
  t.equal(after.fiveXX, 0, `the steady writers got no 5xx other than 503 after the signal (statuses ${after.statuses.join(', ')})`)
  t.equal(ledger.lost, 0, 'no acknowledged write lost')
  t.equal(ledger.duplicated, 0, 'no key appended twice')
  t.same(load.unexpected, [], 'no unexpected answer')
  figures(t, 'sigterm', [
    ['in_flight', inside.length + writersInFlight],
    ['completed_2xx', ok + after.ok],
    ['acknowledged', ledger.acknowledged],
    ['lost', ledger.lost],
    ['duplicated', ledger.duplicated],
    ['5xx', after.fiveXX],
    ['503', after.s503],
    ['exit_code', String(exit.code)],
    ['exit_ms', exitMs],
  ])
})
