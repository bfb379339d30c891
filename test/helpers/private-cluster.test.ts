import t from 'tap'
import pg from 'pg'
import { startPrivateCluster } from './private-cluster.js'

async function selectOne(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  await c.connect()
  try {
    return (await c.query<{ n: number }>('SELECT 1 AS n')).rows[0]!.n
  } finally {
    await c.end()
  }
}

t.test('a private cluster starts, stops and starts again on its own port', async (t) => {
  const cluster = await startPrivateCluster(t)
  t.not(cluster.port, 5432)
  t.equal(await selectOne(cluster.url()), 1)
  t.ok(cluster.running())
  await cluster.stop('immediate')
  t.notOk(cluster.running())
  await t.rejects(selectOne(cluster.url()), { code: 'ECONNREFUSED' })
  await cluster.start()
  t.equal(await selectOne(cluster.url()), 1)
  const c = new pg.Client({ connectionString: cluster.url(), application_name: 'victim' })
  await c.connect()
  const lost = new Promise<Error>((resolve) => c.on('error', resolve))
  t.equal(await cluster.terminateBackends('victim'), 1)
  t.match((await lost).message, /terminat/)
  await cluster.destroy()
  t.notOk(cluster.running())
})
