/**
 * pino options: level from LOG_LEVEL, pretty output only on a TTY (never branch on NODE_ENV), and
 * secrets redacted wherever they might appear: the Authorization header, API keys, app secrets.
 */
import { pino, type Bindings, type ChildLoggerOptions, type LoggerOptions } from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from './config/env.js'

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-hub-signature-256"]',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'key',
  '*.key',
  'api_key',
  '*.api_key',
  'CONSENT_ADMIN_KEY',
  '*.CONSENT_ADMIN_KEY',
  'WHATSAPP_APP_SECRETS',
  '*.WHATSAPP_APP_SECRETS',
  'WHATSAPP_VERIFY_TOKEN',
  '*.WHATSAPP_VERIFY_TOKEN',
  'CHECKPOINT_SIGNING_KEY',
  '*.CHECKPOINT_SIGNING_KEY',
  'DATABASE_URL',
  '*.DATABASE_URL',
]

export function loggerOptions(config: Pick<Config, 'LOG_LEVEL'>, tty = process.stdout.isTTY === true): LoggerOptions {
  return {
    level: config.LOG_LEVEL,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(tty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  }
}

const CHINDINGS = pino.symbols.chindingsSym

/**
 * Fastify's per-request child logger (bindings `{ reqId }`), made without running the bindings
 * through the redaction: with wildcard-first paths (`*.key`) pino passes every binding of every
 * child through the redactor on every request, a cost the pre-send check's hot path notices.
 * The request id is the service's own (a UUID, or a caller's id that matched [\w.:-]{1,128}), so
 * it is appended as JSON directly. Route log options, or a logger that is not pino, take the
 * ordinary path.
 */
export function childLoggerFactory(logger: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  if (Object.keys(opts).length > 0 || !(CHINDINGS in logger)) return logger.child(bindings, opts)
  const child = logger.child({}) as FastifyBaseLogger & { [CHINDINGS]: string }
  let added = ''
  for (const key of Object.keys(bindings)) added += `,${JSON.stringify(key)}:${JSON.stringify(bindings[key])}`
  child[CHINDINGS] += added
  return child
}
