/**
 * The database goes away under load, twice: `pg_ctl restart -m immediate` (every backend killed,
 * crash recovery), then a 20 s stop. Meanwhile the service process stays up and answers 503 with
 * Retry-After (never another 5xx, never a refused connection); once the database is back it serves
 * again by itself, without a restart, within 5 s; no acknowledged write is lost or applied twice.
 * Recovery is measured from the moment pg_ctl reports the server up to the first 2xx after it.
 */
import t from 'tap'
import { checkLedger, Load, tally } from './load.js'
import { sleep } from './processes.js'
import { AUTH, DATABASE, figures, startStack } from './stack.js'

const STOP_MS = 20_000
const RECOVERY_LIMIT_MS = 5_000
t.setTimeout(240_000)

t.test('PostgreSQL restart -m immediate and a 20 s stop under load', async (t) => {
  const { cluster, service, group } = await startStack(t, 'pg-outage')
  const load = new Load(service.base, AUTH, group, { writers: 6, readers: 1, prefix: 'pg' }).start()
  t.teardown(() => load.stop())
  await sleep(2_000)

  const phase = async (name: string, fault: () => Promise<void>) => {
    const from = Date.now()
    await fault()
    const back = Date.now()
    const ok = await load.firstOkAfter(back, 60_000, () => !service.alive)
    const recoveryMs = ok === undefined ? -1 : ok - back
    await sleep(1_500)
    const during = tally(load.between(from, ok ?? Infinity))
    const ledger = await checkLedger(cluster, DATABASE, load)
    t.ok(service.alive, `${name}: the service process stayed up${service.alive ? '' : `; it exited ${JSON.stringify(service.exit)}:\n${service.output()}`}`)
    t.equal(during.fiveXX, 0, `${name}: no 5xx other than 503 during the fault (statuses ${during.statuses.join(', ')})`)
    t.equal(during.s503NoRetryAfter, 0, `${name}: every 503 carries Retry-After`)
    t.equal(during.refused, 0, `${name}: no refused or reset connection (the process answered throughout)`)
    t.not(recoveryMs, -1, `${name}: the service served again after the database returned`)
    t.ok(recoveryMs >= 0 && recoveryMs <= RECOVERY_LIMIT_MS, `${name}: recovered within ${RECOVERY_LIMIT_MS} ms of the database returning (${recoveryMs} ms)`)
    t.equal(ledger.lost, 0, `${name}: no acknowledged write lost`)
    t.equal(ledger.duplicated, 0, `${name}: no key appended twice`)
    t.equal(ledger.wrongEvent, 0, `${name}: acknowledged event_ids are the ledger's`)
    figures(t, name, [
      ['acknowledged', ledger.acknowledged],
      ['lost', ledger.lost],
      ['duplicated', ledger.duplicated],
      ['5xx', during.fiveXX],
      ['503', during.s503],
      ['refused', during.refused],
      ['outage_ms', back - from],
      ['recovery_ms', recoveryMs],
    ])
    return during
  }

  await phase('pg-restart', () => cluster.restartImmediate())
  if (service.alive) {
    const during = await phase('pg-stop', async () => {
      await cluster.stop('fast')
      await sleep(STOP_MS)
      await cluster.start()
    })
    t.ok(during.s503 > 0, `the 20 s stop was answered with 503s (${during.s503})`)
  }
  await load.stop()
  t.same(load.unexpected, [], 'no unexpected answer')
  t.equal(tally(load.answers).fiveXX, 0, 'no 5xx other than 503 during the whole run')
  if (service.alive) t.same(await service.sigterm(), { code: 0, signal: null }, 'and a clean exit at the end')
})
