/** The operator maps a number: unknown workspace 404, a workspace's own claim turned into a mapping counts as created. */
import t from 'tap'
import { buildTestApp, newWorkspace } from '../helpers/build-app.js'
import { mapNumberAsOperator } from '../../src/whatsapp-numbers/operator-mapping.js'
import { createNumbersRepository } from '../../src/webhook/numbers-repository.js'

t.test('operator mapping', async (t) => {
  const ta = await buildTestApp(t)
  const { id: ws } = await newWorkspace(ta)
  const { sql } = ta.app.database
  const numbers = createNumbersRepository(sql)

  const unknown = await mapNumberAsOperator(sql, numbers, '00000000-0000-4000-8000-000000000000', 'pn-1', undefined).catch((e: { statusCode?: number }) => e)
  t.equal((unknown as { statusCode?: number }).statusCode, 404, 'an unknown workspace is 404')
  t.same(await numbers.list('00000000-0000-4000-8000-000000000000'), [], 'nothing mapped to an unknown workspace')

  const first = await mapNumberAsOperator(sql, numbers, ws, 'pn-1', '+1 415 555 0100')
  t.equal(first.created, true)
  t.equal(first.row.mapped_by, 'operator')
  const again = await mapNumberAsOperator(sql, numbers, ws, 'pn-1', undefined)
  t.equal(again.created, false, 'mapping the same number again creates nothing')

  await sql.tx((tx) => numbers.map(tx, ws, 'pn-2', undefined, 'workspace'))
  const claimed = await mapNumberAsOperator(sql, numbers, ws, 'pn-2', undefined)
  t.equal(claimed.created, true, "the workspace's own claim becomes the operator's mapping: created")
  t.equal(claimed.row.mapped_by, 'operator')
})
