/**
 * pino options: level from LOG_LEVEL, pretty output only on a TTY (never branch on NODE_ENV), and
 * secrets redacted wherever they might appear: the Authorization header, API keys, app secrets.
 */
import type { LoggerOptions } from 'pino'
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
