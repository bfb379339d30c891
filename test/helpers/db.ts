/**
 * One real PostgreSQL database per test file, cloned from a template that tap's `before` script
 * (test/setup/global-before.ts) builds and migrates once per run. Cloning is a file copy, so every
 * file starts from the migrated schema in milliseconds and files can run in parallel without
 * sharing rows. Pattern from graphile-worker `__tests__/helpers.ts` and pg-boss `test/hooks.ts`.
 *
 * tap runs `before` in its own process and does not forward its environment to the test
 * processes, so the template name travels through a small file keyed by the tap runner's pid
 * (the parent of both the `before` process and every test process). Two tap runs at once,
 * even from the same checkout, therefore never see each other's template.
 */
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

/** Server-level connection used to create and drop databases (never used by the code under test). */
export const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

/** Every database a test run creates starts with this, so stale ones can be recognised. */
export const DB_PREFIX = 'cl_'

/** What `before` hands to the test processes. */
export interface TemplateInfo {
  /** Template database name, `cl_tpl_<runId>`. */
  template: string
  /** `<pid>_<base36 ms>`: per-file databases of this run are named `cl_t_<runId>_<random>`. */
  runId: string
}

const infoDir = join(tmpdir(), 'consent-ledger-test')

/** The hand-over file for the tap runner with this pid (the caller's parent by default). */
export function templateInfoFile(runnerPid: number = process.ppid): string {
  return join(infoDir, `template-${runnerPid}.json`)
}

export function writeTemplateInfo(info: TemplateInfo, runnerPid?: number): void {
  mkdirSync(infoDir, { recursive: true })
  writeFileSync(templateInfoFile(runnerPid), JSON.stringify(info))
}

export function removeTemplateInfo(runnerPid?: number): void {
  rmSync(templateInfoFile(runnerPid), { force: true })
}

export function readTemplateInfo(runnerPid?: number): TemplateInfo {
  const file = templateInfoFile(runnerPid)
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as TemplateInfo
  } catch (err) {
    throw new Error(
      `No test template database recorded in ${file}. Run tests through tap (npx tap <file>), ` +
        'whose `before` script (test/setup/global-before.ts) creates it.',
      { cause: err },
    )
  }
}

/** Same server and credentials as `base`, another database. */
export function databaseUrl(name: string, base: string = adminUrl): string {
  const url = new URL(base)
  url.pathname = `/${name}`
  return url.toString()
}

/** Double-quotes an identifier (our names are generated, but never interpolate blindly). */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** Opens a client, runs `fn`, always closes the client. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'consent-ledger-tests' })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** Drops a database even if connections are still open (PostgreSQL ≥ 13 `WITH (FORCE)`). */
export async function dropDatabase(client: pg.Client, name: string): Promise<void> {
  await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`)
}

/**
 * Creates an empty-of-rows, fully migrated database for this test and drops it in teardown.
 * Returns its connection URL and name.
 */
export async function freshDatabase(t: Pick<Test, 'teardown'>): Promise<{ url: string; name: string }> {
  const { template, runId } = readTemplateInfo()
  const name = `${DB_PREFIX}t_${runId}_${randomBytes(5).toString('hex')}`
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`))
  t.teardown(() => withClient(adminUrl, (c) => dropDatabase(c, name)))
  return { url: databaseUrl(name), name }
}
