/** findGroupArchived: null for unknown, malformed or another workspace's ids; the archived flag otherwise. */
import t from 'tap'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'
import { findGroupArchived } from '../../src/groups/group-service.js'

t.test('findGroupArchived', async (t) => {
  const ta = await buildTestApp(t)
  const { id: ws, auth } = await newWorkspace(ta)
  const { id: other } = await newWorkspace(ta, 'other')
  const { sql } = ta.app.database
  const g = await newGroup(ta, auth)

  t.same(await findGroupArchived(sql, ws, g), { archived: false })
  t.same(await findGroupArchived(sql, ws, g.toUpperCase()), { archived: false }, 'any case of the uuid')
  t.equal(await findGroupArchived(sql, other, g), null, "another workspace's group")
  t.equal(await findGroupArchived(sql, ws, 'not-a-uuid'), null)
  t.equal(await findGroupArchived(sql, ws, '00000000-0000-4000-8000-000000000000'), null)
  await ta.app.groups.archive(ws, g)
  t.same(await findGroupArchived(sql, ws, g), { archived: true })
})
