/**
 * The process: logger, HTTP timeouts, graceful shutdown (close-with-grace) and listen.
 * On SIGTERM/SIGINT the server stops accepting, in-flight requests finish, new requests on open
 * connections get 503 (Fastify's return503OnClosing), then the database closes.
 */
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig, type Config } from './config/env.js'
import { loggerOptions } from './logging.js'

export async function startServer(config: Config = loadConfig()) {
  const app = await buildApp(config, { logger: loggerOptions(config) })
  app.server.requestTimeout = 120_000
  app.server.headersTimeout = 30_000
  app.server.keepAliveTimeout = 72_000

  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'closing: finishing in-flight requests')
    await app.close()
  })

  await app.listen({ port: config.PORT, host: config.HOST })
  app.log.info(
    { database: app.database.kind, dataDir: app.database.kind === 'pglite' ? config.DATA_DIR : undefined, rootKey: !!config.CONSENT_ADMIN_KEY },
    'consent ledger ready',
  )
  if (!config.CONSENT_ADMIN_KEY) app.log.warn('CONSENT_ADMIN_KEY is unset: no root key; create keys with `consent-ledger keys create`')
  return app
}
