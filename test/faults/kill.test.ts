/**
 * `kill -9` of the service, several times, under concurrent writers and webhook deliveries: every
 * acknowledged write is in the ledger exactly once (no key appended twice, even when the client
 * retried a request whose first attempt committed but was never answered), and every webhook
 * acknowledged with 200 but still `pending` when the process died is processed by the next start.
 * WEBHOOK_INLINE_MAX=0 acknowledges every payload on its inbox commit and processes it right after,
 * so a kill finds acknowledged payloads not processed yet.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkLedger, Load, tally, WebhookLoad } from './load.js'
import { APP_SECRET, ROOT, Service, sleep } from './processes.js'
import { AUTH, DATABASE, figures, PNID, startStack } from './stack.js'

const KILLS = 3
const RUN_MS = 2_500
t.setTimeout(290_000)

t.test('kill -9 under load: nothing acknowledged lost or duplicated, pending webhooks processed after restart', async (t) => {
  const stack = await startStack(t, 'kill', { env: { WEBHOOK_INLINE_MAX: '0' } })
  const { cluster } = stack
  let service = stack.service
  const load = new Load(service.base, AUTH, stack.group, { writers: 8, prefix: 'kill' }).start()
  const hooks = new WebhookLoad(service.base, {
    senders: 4,
    pnid: PNID,
    secret: APP_SECRET,
    template: readFileSync(join(ROOT, 'test/fixtures/meta-user-preferences-stop.json'), 'utf8'),
  }).start()

  let pendingAtKills = 0
  let downMs = 0
  for (let k = 0; k < KILLS; k++) {
    await sleep(RUN_MS)
    await service.kill9()
    const killedAt = Date.now()
    // Acknowledged payloads the dead process had not processed yet.
    const acked = hooks.acked.map((h) => h.inboxId)
    const [pending] = await cluster.query<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_inbox WHERE status = 'pending' AND id = ANY($1::bigint[])`, [acked], DATABASE)
    pendingAtKills += pending!.n
    t.comment(`kill ${k + 1}: ${load.acks.size} writes and ${acked.length} webhooks acknowledged so far, ${pending!.n} acknowledged webhooks pending at the kill`)
    service = await Service.start(stack.env, { port: service.port })
    downMs += Date.now() - killedAt
  }
  await sleep(RUN_MS)
  await Promise.all([load.stop(), hooks.stop()])

  t.same(load.unexpected, [], 'no unexpected answer (only 200, or a failed connection while the process was down)')
  const ledger = await checkLedger(cluster, DATABASE, load)
  t.ok(ledger.acknowledged > 0, `${ledger.acknowledged} writes acknowledged`)
  t.equal(ledger.lost, 0, 'no acknowledged write lost')
  t.equal(ledger.duplicated, 0, 'no Idempotency-Key appended twice')
  t.equal(ledger.wrongEvent, 0, 'each acknowledged event_id is the one in the ledger')

  // The last start's sweep ran before it answered; wait only for rows acknowledged since then.
  const ackedIds = hooks.acked.map((h) => h.inboxId)
  let rows: { id: string; status: string; events: number }[] = []
  for (let i = 0; i < 100; i++) {
    rows = await cluster.query(
      `SELECT i.id::text AS id, i.status, (SELECT count(*)::int FROM consent_events e WHERE e.evidence->>'inbox_id' = i.id::text) AS events
         FROM webhook_inbox i WHERE i.id = ANY($1::bigint[])`,
      [ackedIds],
      DATABASE,
    )
    if (rows.every((r) => r.status !== 'pending')) break
    await sleep(100)
  }
  t.equal(rows.length, ackedIds.length, 'every acknowledged webhook payload is in the inbox')
  t.same(rows.filter((r) => r.status !== 'processed' || r.events !== 1), [], 'every acknowledged payload processed, with exactly its one event')
  t.ok(pendingAtKills > 0, `${pendingAtKills} acknowledged payloads were still pending at a kill (the case under test happened)`)

  const all = tally(load.answers)
  figures(t, 'kill-9', [
    ['kills', KILLS],
    ['acknowledged', ledger.acknowledged],
    ['lost', ledger.lost],
    ['duplicated', ledger.duplicated],
    ['5xx', all.fiveXX],
    ['webhooks_acknowledged', ackedIds.length],
    ['webhooks_pending_at_kill', pendingAtKills],
    ['webhooks_unprocessed', rows.filter((r) => r.status !== 'processed').length],
    ['restart_ms', Math.round(downMs / KILLS)],
  ])
  t.equal(all.fiveXX, 0, 'no 5xx answer')
  await service.sigterm()
})
