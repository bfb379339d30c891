/**
 * buildApp(config): the whole service as a Fastify instance that never listens (server.ts does).
 * Registration order is fixed and awaited: config → error handling → db → metrics → services →
 * repositories → auth → swagger → rate limit (before the routes, fastify-rate-limit#362) → routes.
 *
 * One way to reach a service: a decorator on the instance. Plugins build every service and
 * repository once (plugins/services.ts, plugins/repositories.ts, and the audit, import and WhatsApp
 * plugins) and decorate it (`app.ledger`, `app.groups`, `app.contacts`, ...); route plugins take no
 * options and call those decorators, never `app.database`. Work that must commit with a request's
 * Idempotency-Key answer receives the `tx` that replyIdempotent opens (docs/architecture.md).
 */
import Fastify, { type FastifyServerOptions } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from './config/env.js'
import { childLoggerFactory } from './logging.js'
import { DomainError } from './errors/domain-error.js'
import configPlugin from './plugins/config.js'
import dbPlugin from './plugins/db.js'
import metricsPlugin from './plugins/metrics.js'
import servicesPlugin from './plugins/services.js'
import repositoriesPlugin from './plugins/repositories.js'
import authPlugin from './plugins/auth.js'
import errorHandlerPlugin from './plugins/error-handler.js'
import validationPlugin from './plugins/validation.js'
import inputGuardPlugin from './plugins/input-guard.js'
import swaggerPlugin from './plugins/swagger.js'
import rateLimitPlugin from './plugins/rate-limit.js'
import healthRoutes from './routes/health.js'
import workspaceRoutes from './routes/workspaces/index.js'
import apiKeyRoutes from './routes/api-keys/index.js'
import groupRoutes from './routes/subscription-groups/index.js'
import consentEventRoutes from './routes/consent/events.js'
import consentCheckRoutes from './routes/consent/check.js'
import brazeRoutes from './routes/braze/index.js'
import contactRoutes from './routes/contacts/index.js'
import consentSettingsRoutes from './routes/settings/consent.js'
import importPlugin from './import/import-plugin.js'
import importRoutes from './routes/imports/index.js'
import whatsappPlugin from './webhook/plugin.js'
import whatsappWebhookRoutes from './routes/webhooks/whatsapp.js'
import whatsappInboxRoutes from './routes/webhooks/inbox.js'
import whatsappNumberRoutes from './routes/whatsapp-numbers/index.js'
import keywordSettingsRoutes from './routes/settings/keywords.js'
import whatsappSettingsRoutes from './routes/settings/whatsapp.js'
import auditPlugin from './audit/plugin.js'
import auditRoutes from './routes/audit/index.js'

export interface BuildOptions {
  logger?: FastifyServerOptions['logger']
}

const REQUEST_ID = /^[\w.:-]{1,128}$/

export async function buildApp(config: Config, opts: BuildOptions = {}) {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: config.BODY_LIMIT,
    // Opening embedded PGlite and migrating it can take well over Fastify's 10 s default on a busy
    // machine; a plugin that truly hangs still fails the start.
    pluginTimeout: 120_000,
    trustProxy: config.TRUST_PROXY,
    requestIdHeader: false,
    // A caller's x-request-id is kept (correlation across services) when it is sane.
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    // Our own closing answer (below) instead of Fastify's, so it is problem+json with x-request-id.
    return503OnClosing: false,
    childLoggerFactory,
  }).withTypeProvider<TypeBoxTypeProvider>()

  // Graceful shutdown: once close() begins, requests still arriving on open connections get 503 and
  // the connection closes; requests already in flight finish (server.ts / close-with-grace).
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  // Callback-style (as the per-request hooks of auth and metrics): no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    if (!closing) return done()
    reply.header('connection', 'close')
    done(new DomainError(503, 'shutting_down', 'The service is shutting down; retry the request.', undefined, { 'retry-after': '1' }))
  })
  // JSON API: Fastify's built-in text/plain parser would hand a string to the body schema (a
  // confusing 400 "must be object"); without it a text/plain body is a 415 like any other type.
  // A route that needs another type (CSV imports) registers its own parser in its own context.
  app.removeContentTypeParser('text/plain')

  await app.register(configPlugin, { config })
  await app.register(errorHandlerPlugin)
  await app.register(validationPlugin)
  await app.register(inputGuardPlugin)
  await app.register(dbPlugin)
  await app.register(metricsPlugin)
  await app.register(servicesPlugin)
  await app.register(repositoriesPlugin)
  await app.register(authPlugin)
  await app.register(swaggerPlugin)
  await app.register(rateLimitPlugin)

  await app.register(healthRoutes)
  await app.register(workspaceRoutes)
  await app.register(apiKeyRoutes)
  await app.register(groupRoutes)
  await app.register(consentEventRoutes)
  await app.register(consentCheckRoutes)
  await app.register(brazeRoutes)
  await app.register(contactRoutes)
  await app.register(consentSettingsRoutes)
  await app.register(whatsappPlugin)
  await app.register(whatsappWebhookRoutes)
  await app.register(whatsappInboxRoutes)
  await app.register(whatsappNumberRoutes)
  await app.register(keywordSettingsRoutes)
  await app.register(whatsappSettingsRoutes)
  await app.register(auditPlugin)
  await app.register(auditRoutes)
  await app.register(importPlugin, { batchSize: config.IMPORT_BATCH_SIZE })
  await app.register(importRoutes)
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
