/** Workspaces: created with their settings row, listed oldest first, found by id. */
import t from 'tap'
import { buildTestApp } from '../helpers/build-app.js'
import { createWorkspaceRepository } from '../../src/workspaces/workspace-repository.js'

t.test('workspace repository', async (t) => {
  const { app } = await buildTestApp(t)
  const { sql } = app.database
  const repo = createWorkspaceRepository(sql)

  const a = await sql.tx((tx) => repo.insert(tx, 'first'))
  const b = await sql.tx((tx) => repo.insert(tx, 'second'))
  t.equal(a.name, 'first')
  t.match(a.id, /^[0-9a-f-]{36}$/)
  const settings = await sql.query(`SELECT workspace_id FROM workspace_settings WHERE workspace_id = ANY($1::uuid[])`, [[a.id, b.id]])
  t.equal(settings.length, 2, 'each new workspace has its settings row')

  const ids = (await repo.list()).map((w) => w.id)
  t.ok(ids.indexOf(a.id) < ids.indexOf(b.id), 'listed oldest first')

  t.equal(await repo.exists(sql, a.id), true)
  t.equal(await repo.exists(sql, a.id.toUpperCase()), true, 'any case of the uuid')
  t.equal(await repo.exists(sql, '00000000-0000-4000-8000-000000000000'), false)

  await t.rejects(sql.tx(async (tx) => {
    await repo.insert(tx, 'rolled back')
    throw new Error('abort')
  }))
  t.notOk((await repo.list()).some((w) => w.name === 'rolled back'), 'created inside the caller transaction')
})
