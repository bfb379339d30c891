/**
 * Configuration: defaults, one ConfigError per bad variable naming it, secrets never echoed, and the
 * CLI refusing to start (exit 78, EX_CONFIG) on a bad value.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ConfigError, loadConfig } from '../../src/config/env.js'
import { TS_CHILD_ARGS } from '../helpers/child.js'

const root = fileURLToPath(new URL('../..', import.meta.url))

t.test('defaults', async (t) => {
  const c = loadConfig({})
  t.same(
    {
      DATABASE_URL: c.DATABASE_URL,
      DATABASE_POOL_MAX: c.DATABASE_POOL_MAX,
      DATA_DIR: c.DATA_DIR,
      PORT: c.PORT,
      HOST: c.HOST,
      LOG_LEVEL: c.LOG_LEVEL,
      CONSENT_ADMIN_KEY: c.CONSENT_ADMIN_KEY,
      RATE_LIMIT_MAX: c.RATE_LIMIT_MAX,
      RATE_LIMIT_WINDOW_MS: c.RATE_LIMIT_WINDOW_MS,
      BODY_LIMIT: c.BODY_LIMIT,
      BRAZE_MAX_OBJECTS: c.BRAZE_MAX_OBJECTS,
      IDEMPOTENCY_TTL_HOURS: c.IDEMPOTENCY_TTL_HOURS,
      SHUTDOWN_GRACE_MS: c.SHUTDOWN_GRACE_MS,
      TRUST_PROXY: c.TRUST_PROXY,
    },
    {
      DATABASE_URL: undefined,
      DATABASE_POOL_MAX: 20,
      DATA_DIR: './data',
      PORT: 3000,
      HOST: '0.0.0.0',
      LOG_LEVEL: 'info',
      CONSENT_ADMIN_KEY: undefined,
      RATE_LIMIT_MAX: 6000,
      RATE_LIMIT_WINDOW_MS: 60_000,
      BODY_LIMIT: 1_048_576,
      BRAZE_MAX_OBJECTS: 75,
      IDEMPOTENCY_TTL_HOURS: 24,
      SHUTDOWN_GRACE_MS: 10_000,
      TRUST_PROXY: false,
    },
  )
})

t.test('string values are converted; empty strings fall back to defaults; unknown variables are ignored', async (t) => {
  const c = loadConfig({ PORT: '8080', TRUST_PROXY: 'true', BODY_LIMIT: '', LOG_LEVEL: '', HOME: '/root' })
  t.equal(c.PORT, 8080)
  t.equal(c.TRUST_PROXY, true)
  t.equal(c.BODY_LIMIT, 1_048_576)
  t.equal(c.LOG_LEVEL, 'info')
  t.notOk('HOME' in c, 'only known variables are kept')
})

function configErrorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`)
}

const bad: Array<[string, string]> = [
  ['PORT', 'abc'],
  ['PORT', '70000'],
  ['LOG_LEVEL', 'loud'],
  ['DATABASE_URL', 'mysql://x'],
  ['CONSENT_ADMIN_KEY', 'short-secret-value'],
  ['RATE_LIMIT_MAX', '0'],
]

for (const [name, value] of bad) {
  t.test(`${name}=${value} is refused with a ConfigError naming ${name}`, async (t) => {
    const err = configErrorOf({ [name]: value })
    t.equal(err.name, 'ConfigError')
    t.match(err.message, new RegExp(`\\b${name}:`), 'the message names the variable')
    t.ok(err.problems.length >= 1)
    t.ok(err.problems.every((p) => p.startsWith(`${name}:`)), `only ${name} is blamed: ${err.problems.join('; ')}`)
  })
}

t.test('a non-secret bad value is echoed to help the operator', async (t) => {
  t.match(configErrorOf({ PORT: 'abc' }).message, '"abc"')
  t.match(configErrorOf({ LOG_LEVEL: 'loud' }).message, '"loud"')
})

t.test('secret values are never echoed in the message', async (t) => {
  const secrets: Record<string, string> = {
    CONSENT_ADMIN_KEY: 'sekrit-admin-key-17ch',
    DATABASE_URL: 'mysql://admin:hunter2-password@db.internal/x',
    DATABASE_READ_URL: 'mysql://reader:hunter3-password@db.internal/x',
    REDIS_URL: 'http://:redis-pass-word@redis.internal',
  }
  const err = configErrorOf(secrets)
  for (const [name, value] of Object.entries(secrets)) {
    t.match(err.message, `${name}:`, `${name} is named`)
    t.notMatch(err.message, value, `${name}'s value is not echoed`)
  }
  t.notMatch(err.message, 'hunter2')
  t.notMatch(err.message, 'sekrit')
})

t.test('several bad variables are all reported at once, one line each', async (t) => {
  // A bad LOG_LEVEL alone used to fill TypeBox's 8-error cap and hide the variables after it.
  const err = configErrorOf({ PORT: 'abc', LOG_LEVEL: 'loud', RATE_LIMIT_MAX: '0', BODY_LIMIT: '10' })
  t.same(
    err.problems.map((p) => p.split(':')[0]),
    ['PORT', 'LOG_LEVEL', 'RATE_LIMIT_MAX', 'BODY_LIMIT'],
  )
})

t.test('a bad LOG_LEVEL lists the allowed levels', async (t) => {
  t.match(configErrorOf({ LOG_LEVEL: 'loud' }).message, 'must be one of fatal, error, warn, info, debug, trace, silent')
})

t.test('`consent-ledger serve` with a bad PORT exits 78 and names PORT on stderr', async (t) => {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: 'abc' }
  // Nothing else in the environment may be what makes it fail.
  for (const k of ['DATABASE_URL', 'DATABASE_READ_URL', 'LOG_LEVEL', 'CONSENT_ADMIN_KEY', 'REDIS_URL', 'RATE_LIMIT_MAX', 'BODY_LIMIT']) delete env[k]
  const child = spawn(process.execPath, [...TS_CHILD_ARGS, 'src/cli.ts', 'serve'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  let stdout = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('exit', (c, s) => resolve([c, s])),
  )
  clearTimeout(killer)
  t.equal(signal, null, 'exited by itself')
  t.equal(code, 78, `exit code (stderr: ${stderr})`)
  t.match(stderr, /Invalid configuration/)
  t.match(stderr, /\bPORT:/)
  t.equal(stdout, '', 'nothing on stdout')
})
