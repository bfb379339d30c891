/** `consent-ledger import <file.csv>` against a listening service: progress on stderr, report on stdout. */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildTestApp, newGroup, ROOT_KEY } from '../helpers/build-app.js'
import { TS_CHILD_ARGS } from '../helpers/child.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [...TS_CHILD_ARGS, 'src/cli.ts', ...args], {
    cwd: root,
    env: { ...process.env, CONSENT_API_KEY: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })))
}

t.test('streams the file, waits for the import, prints the report and saves the refused rows', async (t) => {
  const ta = await buildTestApp(t)
  await ta.app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(ta.app.server.address() as { port: number }).port}`
  const G = await newGroup(ta, ta.root)
  const dir = await mkdtemp(join(tmpdir(), 'cl-import-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'consents.csv')
  await writeFile(file, `phone,subscription_state\n+14155550101,subscribed\n+1415,subscribed\n+14155550103,unsubscribed\n`)
  const out = join(dir, 'errors.csv')

  const r = await cli(['import', file, '--url', base, '--subscription-group-id', G, '--source-label', 'cli', '--errors', out], { CONSENT_API_KEY: ROOT_KEY })
  t.equal(r.code, 0, r.stderr)
  const report = JSON.parse(r.stdout)
  t.match(report, { status: 'completed', rows_total: 3, rows_applied: 2, rows_rejected: 1, rows_duplicate: 0, source_label: 'cli' })
  t.match(r.stderr, /uploaded/, 'upload progress')
  t.match(r.stderr, new RegExp(`stored as import ${report.id}: 3 rows`))
  t.equal(await readFile(out, 'utf8'), 'row,column,code,message\n3,phone,invalid_phone,"phone ""+1415"" is not a valid phone number"\n')
})

t.test('usage errors and refused uploads exit non-zero with the reason', async (t) => {
  const ta = await buildTestApp(t)
  await ta.app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(ta.app.server.address() as { port: number }).port}`
  const dir = await mkdtemp(join(tmpdir(), 'cl-import-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'bad.csv')
  await writeFile(file, 'name\nx\n')

  const noKey = await cli(['import', file, '--url', base])
  t.equal(noKey.code, 64)
  t.match(noKey.stderr, /--key or CONSENT_API_KEY/)
  const missing = await cli(['import', join(dir, 'nope.csv'), '--key', ROOT_KEY, '--url', base])
  t.equal(missing.code, 66)
  const refused = await cli(['import', file, '--key', ROOT_KEY, '--url', base])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /refused the file \(400\).*invalid_header/)
})
