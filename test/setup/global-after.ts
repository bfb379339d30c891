/**
 * tap `after` script (runs even when tests fail): drops this run's template database and any
 * per-file database whose teardown did not run (a crashed or timed-out test file).
 */
import {
  adminUrl,
  DB_PREFIX,
  dropDatabase,
  quoteIdent,
  readTemplateInfo,
  removeTemplateInfo,
  type TemplateInfo,
  withClient,
} from '../helpers/db.js'

let info: TemplateInfo | undefined
try {
  info = readTemplateInfo()
} catch {
  info = undefined // `before` failed before recording anything: nothing to drop
}

if (info) {
  const { template, runId } = info
  await withClient(adminUrl, async (admin) => {
    const { rows } = await admin.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
      [`${DB_PREFIX}t_${runId}_`],
    )
    for (const { datname } of rows) await dropDatabase(admin, datname)
    const tpl = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [template])
    if (tpl.rowCount) {
      // A database flagged IS_TEMPLATE cannot be dropped.
      await admin.query(`ALTER DATABASE ${quoteIdent(template)} WITH IS_TEMPLATE false`)
      await dropDatabase(admin, template)
    }
  })
  removeTemplateInfo()
}
