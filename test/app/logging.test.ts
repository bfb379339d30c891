/**
 * Logging: the app's pino options (src/logging.ts) redact secrets wherever they might appear, and
 * request logs carry the request id. Logs are captured from a Writable passed as pino's stream.
 */
import t, { type Test } from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp, type App } from '../../src/app.js'
import { loadConfig } from '../../src/config/env.js'
import { childLoggerFactory, loggerOptions, REDACT_PATHS } from '../../src/logging.js'
import { freshDatabase } from '../helpers/db.js'
import { ROOT_KEY } from '../helpers/build-app.js'

interface Capture {
  lines: Array<Record<string, unknown>>
  text: () => string
}

function capture(): { stream: Writable; logs: Capture } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(chunk.toString())
      cb()
    },
  })
  const text = () => chunks.join('')
  return {
    stream,
    logs: {
      text,
      get lines() {
        return text()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>)
      },
    },
  }
}

const WORKSPACE_SECRET = 'cl_live_thisIsASecretThatMustNeverBeLogged_1234'

async function appWithCapture(t: Test): Promise<{ app: App; logs: Capture }> {
  const { url } = await freshDatabase(t)
  const config = loadConfig({ DATABASE_URL: url, CONSENT_ADMIN_KEY: ROOT_KEY, LOG_LEVEL: 'info', DATABASE_POOL_MAX: '4' })
  const { stream, logs } = capture()
  const opts = loggerOptions(config, false)
  t.notOk('transport' in opts, 'no pretty transport when not on a TTY')
  const app = await buildApp(config, { logger: { ...opts, stream } })
  // A careless route that logs whole header objects and its configuration.
  app.get('/test-log', async (request) => {
    request.log.info({ headers: request.headers }, 'headers seen')
    request.log.info({ config: app.config }, 'config seen')
    return { ok: true }
  })
  t.teardown(() => app.close())
  await app.ready()
  return { app, logs }
}

t.test('an Authorization header never reaches the logs', async (t) => {
  const { app, logs } = await appWithCapture(t)
  const ok = await app.inject({ method: 'GET', url: '/test-log', headers: { authorization: `Bearer ${WORKSPACE_SECRET}`, 'x-request-id': 'log-test-1' } })
  t.equal(ok.statusCode, 200)
  const root = await app.inject({ method: 'GET', url: '/subscription-groups', headers: { authorization: `Bearer ${ROOT_KEY}` } })
  t.equal(root.statusCode, 200)
  const rejected = await app.inject({ method: 'GET', url: '/subscription-groups', headers: { authorization: `Bearer ${WORKSPACE_SECRET}` } })
  t.equal(rejected.statusCode, 401)

  const text = logs.text()
  t.notMatch(text, WORKSPACE_SECRET, 'the bearer secret is not in the logs')
  t.notMatch(text, ROOT_KEY, 'the root key is not in the logs')

  const lines = logs.lines
  const headersSeen = lines.find((l) => l.msg === 'headers seen') as { headers: Record<string, string>; reqId: string } | undefined
  t.ok(headersSeen, 'the header object was logged')
  t.equal(headersSeen?.headers.authorization, '[redacted]')
  t.equal(headersSeen?.headers['x-request-id'], 'log-test-1', 'other headers are kept')
  t.equal(headersSeen?.reqId, 'log-test-1', 'request logs carry the request id')

  // The framework's own request logs exist (so the absence above is not an empty capture).
  t.ok(lines.some((l) => l.msg === 'incoming request' && l.reqId === 'log-test-1'))
  t.ok(lines.some((l) => l.msg === 'request completed' && l.reqId === 'log-test-1'))
})

t.test('configuration secrets are redacted, top level or nested', async (t) => {
  const { app, logs } = await appWithCapture(t)
  const adminKey = 'x'.repeat(30)
  app.log.info({ CONSENT_ADMIN_KEY: adminKey }, 'top level')
  app.log.info({ config: { CONSENT_ADMIN_KEY: adminKey, DATABASE_URL: 'postgres://u:pw-in-url@h/db', PORT: 3000 } }, 'nested')
  const r = await app.inject({ method: 'GET', url: '/test-log' })
  t.equal(r.statusCode, 200)

  const text = logs.text()
  t.notMatch(text, adminKey, 'the admin key is never logged')
  t.notMatch(text, 'pw-in-url', 'the database password is never logged')
  t.notMatch(text, ROOT_KEY)
  const top = logs.lines.find((l) => l.msg === 'top level')
  t.equal(top?.CONSENT_ADMIN_KEY, '[redacted]')
  const nested = logs.lines.find((l) => l.msg === 'nested') as { config: Record<string, unknown> } | undefined
  t.same(nested?.config, { CONSENT_ADMIN_KEY: '[redacted]', DATABASE_URL: '[redacted]', PORT: 3000 })
  const fromApp = logs.lines.find((l) => l.msg === 'config seen') as { config: Record<string, unknown> } | undefined
  t.equal(fromApp?.config.CONSENT_ADMIN_KEY, '[redacted]', "the app's own config object is redacted when logged")
  t.equal(fromApp?.config.DATABASE_URL, '[redacted]')
  t.equal(fromApp?.config.LOG_LEVEL, 'info', 'non-secret settings stay readable')
})

t.test('API key objects are redacted in `key` and `api_key` fields', async (t) => {
  const { app, logs } = await appWithCapture(t)
  app.log.info({ key: WORKSPACE_SECRET, created: { api_key: WORKSPACE_SECRET, name: 'k1' } }, 'keys')
  const line = logs.lines.find((l) => l.msg === 'keys')
  t.same({ key: line?.key, created: line?.created }, { key: '[redacted]', created: { api_key: '[redacted]', name: 'k1' } })
  t.notMatch(logs.text(), WORKSPACE_SECRET)
})

t.test('the per-request child logger carries its bindings as JSON and keeps route log options', async (t) => {
  const { stream, logs } = capture()
  const log = pino(loggerOptions({ LOG_LEVEL: 'info' }, false), stream)
  const child = childLoggerFactory(log, { reqId: 'odd "id" \\ with quotes' }, {})
  child.info({ key: WORKSPACE_SECRET }, 'from child')
  const grandchild = child.child({ step: 2 })
  grandchild.info('from grandchild')
  const quiet = childLoggerFactory(log, { reqId: 'r2' }, { level: 'error' })
  quiet.info('dropped')
  quiet.error('kept')
  const lines = logs.lines
  t.same(
    lines.map((l) => [l.msg, l.reqId, l.step]),
    [
      ['from child', 'odd "id" \\ with quotes', undefined],
      ['from grandchild', 'odd "id" \\ with quotes', 2],
      ['kept', 'r2', undefined],
    ],
  )
  t.equal(lines[0]!.key, '[redacted]', "the child's own fields are still redacted")
  t.notMatch(logs.text(), WORKSPACE_SECRET)
})

t.test('LOG_LEVEL is honoured', async (t) => {
  const { stream, logs } = capture()
  const { url } = await freshDatabase(t)
  const app = await buildApp(loadConfig({ DATABASE_URL: url, LOG_LEVEL: 'warn', DATABASE_POOL_MAX: '2' }), {
    logger: { ...loggerOptions({ LOG_LEVEL: 'warn' }, false), stream },
  })
  t.teardown(() => app.close())
  await app.ready()
  app.log.info('quiet')
  app.log.warn('loud')
  t.same(logs.lines.map((l) => l.msg), ['loud'])
})

t.test('every redaction path works on a plain pino logger with these options', async (t) => {
  const secret = 'S3CRET-VALUE-0123456789abcdef'
  // One object per entry of REDACT_PATHS, in the same order, with the secret where the path points.
  const samples: Array<Record<string, unknown>> = [
    { req: { headers: { authorization: secret } } },
    { req: { headers: { 'x-hub-signature-256': secret } } },
    { req: { headers: { cookie: secret } } },
    { headers: { authorization: secret } },
    { authorization: secret },
    { key: secret },
    { created: { key: secret } },
    { api_key: secret },
    { body: { api_key: secret } },
    { CONSENT_ADMIN_KEY: secret },
    { config: { CONSENT_ADMIN_KEY: secret } },
    { WHATSAPP_APP_SECRETS: secret },
    { config: { WHATSAPP_APP_SECRETS: secret } },
    { WHATSAPP_VERIFY_TOKEN: secret },
    { config: { WHATSAPP_VERIFY_TOKEN: secret } },
    { CHECKPOINT_SIGNING_KEY: secret },
    { config: { CHECKPOINT_SIGNING_KEY: secret } },
    { DATABASE_URL: secret },
    { config: { DATABASE_URL: secret } },
  ]
  t.equal(samples.length, REDACT_PATHS.length, 'one sample per redaction path')
  for (const [i, sample] of samples.entries()) {
    const { stream, logs } = capture()
    const log = pino(loggerOptions({ LOG_LEVEL: 'info' }, false), stream)
    log.info(sample, 'sample')
    const text = logs.text()
    t.match(text, '"msg":"sample"', `${REDACT_PATHS[i]}: logged`)
    t.notMatch(text, secret, `${REDACT_PATHS[i]}: the secret is not in the line`)
    t.match(text, '[redacted]', `${REDACT_PATHS[i]}: censored as [redacted]`)
  }
})
