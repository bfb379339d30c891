/**
 * One root error handler, so every error answers in one shape. Native routes answer RFC 9457
 * application/problem+json with a stable `code` and, for validation, `errors[]` of JSON pointers; routes marked
 * `config.errorShape = 'braze'` answer Braze's `{"message": ...}` instead, because their callers'
 * code parses that. 5xx are logged with the request id and never leak driver messages.
 */
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { DomainError, type FieldError } from '../errors/domain-error.js'
import { isConnectionError } from '../db/connection-errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    errorShape?: 'problem' | 'braze'
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
}

interface Problem {
  status: number
  code: string
  detail: string
  errors?: FieldError[]
  headers?: Record<string, string>
}

function pointerOf(e: { instancePath?: string; params?: Record<string, unknown> }, context: string): string {
  let p = e.instancePath ?? ''
  const extra = (e.params?.missingProperty ?? e.params?.additionalProperty) as string | undefined
  if (extra) p += `/${extra.replace(/~/g, '~0').replace(/\//g, '~1')}`
  return `/${context}${p}`
}

/** Seconds a client should wait before retrying while the database is unreachable. */
export const DATABASE_RETRY_AFTER_S = 5

/**
 * The database is unreachable (restart, failover, outage): a temporary condition, not a fault of
 * the request, so 503 with Retry-After, never 500 (src/db/connection-errors.ts says which errors).
 */
const DATABASE_UNAVAILABLE: Problem = {
  status: 503,
  code: 'database_unavailable',
  detail: 'The database is unavailable at the moment; retry later.',
  headers: { 'retry-after': String(DATABASE_RETRY_AFTER_S) },
}

/**
 * PostgreSQL's class 22 "data exception" (22021 bad encoding / NUL in text, 22P05 NUL in jsonb,
 * 22P02 bad literal, 22007/22008 bad or out-of-range datetime, 22003 numeric out of range, ...),
 * and 08P01, which the server answers when a NUL reaches a query's text: the request carried a
 * value the database cannot take. A safety net behind the request checks
 * (plugins/input-guard.ts, the schemas): answered 400, never 500, and logged so the missing
 * check can be added. The driver's message is not echoed.
 */
function dataExceptionOf(err: unknown): string | undefined {
  for (let e = err, i = 0; e && typeof e === 'object' && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    const { code, severity } = e as { code?: unknown; severity?: unknown }
    if (typeof code === 'string' && typeof severity === 'string' && /^(22[0-9A-Z]{3}|08P01)$/.test(code)) return code
  }
  return undefined
}

export function toProblem(err: FastifyError | DomainError | Error): Problem {
  if (err instanceof DomainError) {
    return { status: err.statusCode, code: err.code, detail: err.message, errors: err.errors, headers: err.headers }
  }
  const fe = err as FastifyError & { validationContext?: string }
  if (fe.validation) {
    const ctx = fe.validationContext ?? 'body'
    return {
      status: 400,
      code: 'validation_failed',
      detail: 'The request does not match the schema.',
      errors: fe.validation.map((v) => ({
        pointer: pointerOf(v as never, ctx),
        code: v.keyword,
        message: v.message ?? 'invalid',
      })),
    }
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: 'malformed_json', detail: fe.message }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'unsupported_media_type', detail: fe.message }
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'body_too_large', detail: fe.message }
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, code: 'invalid_content_length', detail: fe.message }
  }
  if (err instanceof SyntaxError) return { status: 400, code: 'malformed_json', detail: err.message }
  if (isConnectionError(err)) return DATABASE_UNAVAILABLE
  const sqlState = dataExceptionOf(err)
  if (sqlState) {
    return { status: 400, code: 'invalid_value', detail: `A value in the request cannot be stored or compared (SQLSTATE ${sqlState}).` }
  }
  const status = fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 600 ? fe.statusCode : 500
  if (status === 429) return { status, code: 'rate_limited', detail: fe.message }
  if (status < 500) return { status, code: fe.code ? fe.code.toLowerCase() : 'bad_request', detail: fe.message }
  return { status, code: status === 503 ? 'unavailable' : 'internal_error', detail: status === 503 ? fe.message : 'An unexpected error occurred.' }
}

/**
 * Braze's REST namespaces: an unknown path or wrong method there is answered in Braze's shape, since
 * the caller is a Braze client (/subscription-groups is native: only `/subscription/` is Braze's).
 */
const BRAZE_PATH = /^\/(?:users|subscription|v2|campaigns|canvas|messages|sends|transactional|catalogs|segments|events|purchases|kpi|templates|content_blocks|email|sms|preference_center)(?:\/|$)/

const pathOf = (request: FastifyRequest) => request.url.split('?')[0] ?? ''

function brazeShaped(request: FastifyRequest): boolean {
  if (request.routeOptions.config?.errorShape === 'braze') return true
  return request.is404 && BRAZE_PATH.test(pathOf(request))
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, p: Problem) {
  if (p.headers) reply.headers(p.headers)
  if (brazeShaped(request)) {
    return reply.code(p.status).type('application/json').send({ message: p.detail, ...(p.errors ? { errors: p.errors } : {}) })
  }
  return reply
    .code(p.status)
    .type('application/problem+json')
    .send({
      type: `https://consent-ledger.dev/problems/${p.code}`,
      title: TITLES[p.status] ?? 'Error',
      status: p.status,
      detail: p.detail,
      code: p.code,
      instance: request.url.split('?')[0],
      ...(p.errors ? { errors: p.errors } : {}),
    })
}

/** A body of at most this many bytes (Content-Length) is read to its end after an early answer. */
const DRAIN_MAX_BYTES = 1024 * 1024
/** How long the rest of a larger body is read and discarded before the connection is cut. */
const DRAIN_MS = 10_000

/**
 * An answer given before the request's body was read (too large, unauthenticated, refused upload).
 * The client is usually still sending: destroying the socket now resets the connection before it
 * reads the answer (ECONNRESET/EPIPE), and leaving the rest unread leaves a keep-alive connection
 * that the client's next request waits on. A small rest is read and discarded, and the connection
 * stays open; a larger one gets `Connection: close` (the client opens a new connection for its
 * next request), and is read and discarded while it keeps coming, for DRAIN_MS at most.
 */
export function settleUnreadBody(request: FastifyRequest, reply: FastifyReply): void {
  const raw = request.raw
  if (raw.complete || raw.readableEnded || raw.destroyed) return
  const length = Number(request.headers['content-length'])
  raw.resume()
  if (Number.isFinite(length) && length <= DRAIN_MAX_BYTES) return
  reply.header('connection', 'close')
  const timer = setTimeout(() => {
    // (app.inject's request has a socket-like object without destroy.)
    if (!raw.complete && typeof raw.socket?.destroy === 'function') raw.socket.destroy()
  }, DRAIN_MS)
  timer.unref()
  const done = () => clearTimeout(timer)
  raw.once('end', done)
  raw.once('close', done)
}

export default fp(
  async (app) => {
    app.setErrorHandler((err, request, reply) => {
      settleUnreadBody(request, reply)
      const p = toProblem(err as FastifyError)
      // An outage fails every request alike: one line each, without the stack.
      if (p.code === 'database_unavailable') request.log.warn({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, 'database unavailable')
      else if (p.status >= 500) request.log.error({ err }, 'request failed')
      else if (p.code === 'invalid_value') request.log.warn({ err }, 'database refused a request value')
      else request.log.info({ code: p.code, status: p.status }, 'request rejected')
      return sendProblem(request, reply, p)
    })
    // Methods of each Braze-shaped path, for 405 + Allow on a wrong method there.
    const brazeMethods = new Map<string, Set<string>>()
    app.addHook('onRoute', (route) => {
      if (route.config?.errorShape !== 'braze') return
      const methods = brazeMethods.get(route.url) ?? new Set<string>()
      for (const m of Array.isArray(route.method) ? route.method : [route.method]) methods.add(m)
      brazeMethods.set(route.url, methods)
    })
    app.setNotFoundHandler((request, reply) => {
      settleUnreadBody(request, reply)
      const path = pathOf(request)
      const allowed = brazeMethods.get(path)
      if (allowed) {
        const allow = [...allowed].sort().join(', ')
        return sendProblem(request, reply, {
          status: 405,
          code: 'method_not_allowed',
          detail: `Method ${request.method} is not allowed on ${path}; use ${allow}`,
          headers: { allow },
        })
      }
      return sendProblem(request, reply, { status: 404, code: 'not_found', detail: `Route ${request.method} ${path} not found` })
    })
  },
  { name: 'error-handler' },
)
