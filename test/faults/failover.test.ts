/**
 * Failover to a synchronous standby under load. A primary and a standby (pg_basebackup -R) started
 * by the test, the standby named in the primary's `synchronous_standby_names` with
 * synchronous_commit on, so a commit is acknowledged only once the standby has it. The service
 * reaches the database through a small TCP proxy (what a deployment's virtual IP, DNS name or
 * pgbouncer does). Failover as an operator does it: promote the standby, stop the primary
 * (immediate, as a crash), point the proxy at the standby, dropping the connections it held.
 * Every write acknowledged before, during and after is on the new primary exactly once; the time
 * without service is the longest gap between two successful answers around the failover.
 */
import t from 'tap'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { migratePostgres } from '../../src/db/migrate.js'
import { checkLedger, Load, tally } from './load.js'
import { freePort, PgCluster, scenarioDir, Service, sleep, stopAll } from './processes.js'
import { api, AUTH, DATABASE, databaseUrlOf, figures } from './stack.js'

t.setTimeout(240_000)

/** A loopback TCP proxy whose target can be switched; switching drops every proxied connection. */
class SwitchProxy {
  private sockets = new Set<Socket>()
  private constructor(
    private server: Server,
    readonly port: number,
    private target: number,
  ) {}

  static async start(target: number): Promise<SwitchProxy> {
    const port = await freePort()
    const server = createServer()
    const p = new SwitchProxy(server, port, target)
    server.on('connection', (client) => p.pipe(client))
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    return p
  }

  private pipe(client: Socket) {
    const upstream = connect(this.target, '127.0.0.1')
    this.sockets.add(client).add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      this.sockets.delete(client)
      this.sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    client.pipe(upstream)
    upstream.pipe(client)
  }

  switchTo(target: number) {
    this.target = target
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
  }

  async close() {
    this.switchTo(this.target)
    await new Promise((r) => this.server.close(r))
  }
}

t.test('failover to a synchronous standby under load', async (t) => {
  t.teardown(() => stopAll())
  const t0 = Date.now()
  const step = (what: string) => t.comment(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`)
  const dir = scenarioDir('failover')
  const primary = await PgCluster.init(dir, 'primary', { conf: ['synchronous_commit = on'] })
  await primary.start()
  await primary.query(`CREATE DATABASE ${DATABASE}`)
  await migratePostgres(databaseUrlOf(primary))
  step('primary up and migrated')
  const standby = await PgCluster.standbyOf(primary, dir, 'standby')
  await standby.start()
  // Synchronous only once the standby exists (before, every commit would wait for it).
  await primary.query(`ALTER SYSTEM SET synchronous_standby_names = 'standby'`)
  await primary.query('SELECT pg_reload_conf()')
  step('standby cloned and started')
  for (let i = 0; ; i++) {
    const rows = await primary.query<{ sync_state: string }>(`SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'`)
    if (rows[0]?.sync_state === 'sync') break
    if (i > 300) throw new Error(`the standby never became synchronous: ${JSON.stringify(rows)}`)
    await sleep(100)
  }

  step('standby synchronous')
  const proxy = await SwitchProxy.start(primary.port)
  t.teardown(() => proxy.close())
  const service = await Service.start({ DATABASE_URL: databaseUrlOf(proxy) })
  const group = ((await api(service.base, 'POST', '/subscription-groups', { name: 'Promotions', channel: 'whatsapp', category: 'marketing' })) as { id: string }).id
  const load = new Load(service.base, AUTH, group, { writers: 6, readers: 1, prefix: 'fo' }).start()
  t.teardown(() => load.stop())
  step('service up, load running')
  await sleep(3_000)

  const from = Date.now()
  await standby.promote()
  step('standby promoted')
  await primary.stop('immediate')
  step('primary stopped')
  proxy.switchTo(standby.port)
  const switched = Date.now()
  const ok = await load.firstOkAfter(switched, 60_000, () => !service.alive)
  step(`first success after the switch: ${ok === undefined ? 'none' : `${ok - switched} ms`}`)
  await sleep(2_000)
  await load.stop()

  // The longest stretch without a successful answer, from a second before the failover began.
  const oks = load.between(from - 1_000).filter((a) => a.status >= 200 && a.status < 300).map((a) => a.at)
  let gap = 0
  for (let i = 1; i < oks.length; i++) gap = Math.max(gap, oks[i]! - oks[i - 1]!)
  const during = tally(load.between(from, ok ?? Infinity))
  const ledger = await checkLedger(standby, DATABASE, load)

  t.ok(service.alive, `the service process stayed up${service.alive ? '' : `:\n${service.output()}`}`)
  t.ok(ok !== undefined, 'the service served again from the promoted standby')
  t.equal(ledger.lost, 0, `no acknowledged write lost (${ledger.acknowledged} acknowledged, checked on the new primary)`)
  t.equal(ledger.duplicated, 0, 'no key appended twice')
  t.equal(ledger.wrongEvent, 0, "acknowledged event_ids are the new primary's")
  t.equal(during.fiveXX, 0, `no 5xx other than 503 during the failover (statuses ${during.statuses.join(', ')})`)
  t.same(load.unexpected, [], 'no unexpected answer')
  figures(t, 'failover', [
    ['acknowledged', ledger.acknowledged],
    ['lost', ledger.lost],
    ['duplicated', ledger.duplicated],
    ['5xx', during.fiveXX],
    ['503', during.s503],
    ['failover_ms', switched - from],
    ['recovery_ms', ok === undefined ? -1 : ok - switched],
    ['without_service_ms', gap],
  ])
  if (service.alive) await service.sigterm()
})
