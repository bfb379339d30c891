/**
 * The CLI (`consent-ledger keys create`) run as a real child process against a fresh test database:
 * it prints the key once, as one JSON line, and that key authenticates against the service.
 * The TypeScript source is spawned with tsx (test/helpers/child.ts); nothing is imported.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../src/app.js'
import { EnvSchema, loadConfig } from '../src/config/env.js'
import { DEFAULT_WORKSPACE_ID, SCOPES } from '../src/auth/api-keys.js'
import { freshDatabase } from './helpers/db.js'
import { ROOT_KEY } from './helpers/build-app.js'
import { TS_CHILD_ARGS } from './helpers/child.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const cliPath = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

/**
 * The parent's environment (tap's TS_NODE_* settings keep the child's loader transpile-only, which
 * is much faster) minus every variable the service reads, so nothing leaks in from the shell.
 */
function inheritedEnv(): Record<string, string> {
  const configVars = new Set(Object.keys(EnvSchema.properties))
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !configVars.has(k)) out[k] = v
  return out
}

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TS_CHILD_ARGS, cliPath, ...args], {
      cwd: root,
      env: { ...inheritedEnv(), LOG_LEVEL: 'silent', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('keys create prints one JSON line whose key authenticates against the service', async (t) => {
  const { url } = await freshDatabase(t)
  const env = { DATABASE_URL: url, CONSENT_ADMIN_KEY: ROOT_KEY }
  const r = await runCli(['keys', 'create', '--name', 'ci', '--scopes', 'consent:read,consent:write'], env)
  t.equal(r.code, 0, `exit 0; stderr: ${r.stderr}`)
  const lines = r.stdout.split('\n').filter((l) => l !== '')
  t.equal(lines.length, 1, `one line on stdout: ${JSON.stringify(r.stdout)}`)
  const out = JSON.parse(lines[0]!)
  t.match(out.key, /^cl_[a-z0-9]{12}_[A-Za-z0-9_-]{20,}$/, 'prints the key')
  t.equal(out.name, 'ci')
  t.same(out.scopes, ['consent:read', 'consent:write'])
  t.equal(out.workspace_id, DEFAULT_WORKSPACE_ID, 'defaults to workspace `default`')
  t.type(out.id, 'string')

  const app = await buildApp(loadConfig({ DATABASE_URL: url, CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent', DATABASE_POOL_MAX: '4' }))
  t.teardown(() => app.close())
  await app.ready()

  const [row] = await app.database.sql.query<{ key_hash: string; prefix: string }>(`SELECT key_hash, prefix FROM api_keys WHERE id = $1`, [out.id])
  t.ok(row, 'the key is stored in the database the CLI was pointed at')
  t.not(row!.key_hash, out.key, 'stored hashed')

  const auth = { authorization: `Bearer ${out.key}` }
  const ok = await app.inject({ method: 'GET', url: '/subscription-groups', headers: auth })
  t.equal(ok.statusCode, 200, ok.body)
  const forbidden = await app.inject({ method: 'POST', url: '/subscription-groups', headers: auth, payload: { name: 'x', channel: 'sms', category: 'utility' } })
  t.equal(forbidden.statusCode, 403, 'the key has only the scopes asked for')

  const list = await app.inject({ method: 'GET', url: '/api-keys', headers: { authorization: `Bearer ${ROOT_KEY}` } })
  const listed = (list.json().api_keys as Array<{ id: string; name: string }>).find((k) => k.id === out.id)
  t.equal(listed?.name, 'ci', 'the service lists the key')
  t.notOk(list.body.includes(out.key), 'but never its secret')
})

t.test('keys create refuses bad arguments with exit code 64 and writes nothing', async (t) => {
  const { url } = await freshDatabase(t)
  const env = { DATABASE_URL: url, CONSENT_ADMIN_KEY: ROOT_KEY }

  // Independent runs (none writes), so in parallel: each child pays the TypeScript loader's start.
  const [bad, noName, noScopes, missingWs] = await Promise.all([
    runCli(['keys', 'create', '--name', 'ci', '--scopes', 'consent:read,superuser'], env),
    runCli(['keys', 'create', '--scopes', 'admin'], env),
    runCli(['keys', 'create', '--name', 'x'], env),
    runCli(['keys', 'create', '--name', 'x', '--scopes', 'admin', '--workspace', '00000000-0000-4000-8000-00000000beef'], env),
  ])
  t.equal(bad.code, 64, 'EX_USAGE')
  t.equal(bad.stdout, '', 'no key printed')
  t.match(bad.stderr, /superuser/, 'names the bad scope')
  for (const s of SCOPES) t.ok(bad.stderr.includes(s), `lists the valid scope ${s}`)

  t.equal(noName.code, 64, 'missing --name')
  t.equal(noName.stdout, '')
  t.equal(noScopes.code, 64, 'missing --scopes')
  t.equal(noScopes.stdout, '')
  t.equal(missingWs.code, 66, `unknown workspace: EX_NOINPUT; stderr: ${missingWs.stderr}`)
  t.match(missingWs.stderr, /not found/)
  t.equal(missingWs.stdout, '')

  // Nothing but (possibly) the root key was written by these runs.
  const app = await buildApp(loadConfig({ DATABASE_URL: url, CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'silent', DATABASE_POOL_MAX: '2' }))
  t.teardown(() => app.close())
  await app.ready()
  const rows = await app.database.sql.query<{ is_root: boolean }>(`SELECT is_root FROM api_keys`)
  t.same(rows, [{ is_root: true }], 'only the root key exists')
})
