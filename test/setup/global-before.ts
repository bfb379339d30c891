/**
 * tap `before` script: builds the migrated template database once per `tap` run
 * (graphile-worker `scripts/setup_template_db.sh`, done in TypeScript). Every test file then
 * clones it with `freshDatabase(t)` from test/helpers/db.ts; global-after.ts drops it all.
 *
 * The template is marked IS_TEMPLATE and ALLOW_CONNECTIONS false: `CREATE DATABASE … TEMPLATE`
 * fails while anyone is connected to the source, so nothing may connect to it by accident.
 */
import { migratePostgres } from '../../src/db/migrate.js'
import {
  adminUrl,
  databaseUrl,
  DB_PREFIX,
  dropDatabase,
  quoteIdent,
  withClient,
  writeTemplateInfo,
} from '../helpers/db.js'

/** Databases left by runs that were killed before `after` ran are swept once they are this old. */
const STALE_AFTER_MS = 12 * 60 * 60 * 1000

// process.ppid is the tap runner: the parent of this script, of every test process and of `after`.
const runId = `${process.ppid}_${Date.now().toString(36)}`
const template = `${DB_PREFIX}tpl_${runId}`

await withClient(adminUrl, async (admin) => {
  // Sweep databases of crashed runs: names are cl_tpl_<pid>_<ms36> or cl_t_<pid>_<ms36>_<random>.
  const { rows } = await admin.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE starts_with(datname, $1) OR starts_with(datname, $2)',
    [`${DB_PREFIX}tpl_`, `${DB_PREFIX}t_`],
  )
  for (const { datname } of rows) {
    const made = /^cl_(?:tpl|t)_\d+_([0-9a-z]+)(?:_|$)/.exec(datname)?.[1]
    if (made !== undefined && Date.now() - parseInt(made, 36) > STALE_AFTER_MS) {
      try {
        await admin.query(`ALTER DATABASE ${quoteIdent(datname)} WITH IS_TEMPLATE false`)
        await dropDatabase(admin, datname)
      } catch (err) {
        console.error(`# could not drop stale test database ${datname}: ${String(err)}`)
      }
    }
  }
  await dropDatabase(admin, template) // a leftover with this very name would be stale
  await admin.query(`CREATE DATABASE ${quoteIdent(template)}`)
})

try {
  await migratePostgres(databaseUrl(template))
  await withClient(adminUrl, (admin) =>
    admin.query(`ALTER DATABASE ${quoteIdent(template)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`),
  )
} catch (err) {
  await withClient(adminUrl, (admin) => dropDatabase(admin, template)).catch(() => {})
  throw err
}

writeTemplateInfo({ template, runId })
console.error(`# test template database ${template} ready`)
