/**
 * Which errors mean "the database cannot be reached right now" rather than "this statement was
 * wrong": the connection was refused, reset or terminated (failover, restart, pg_terminate_backend),
 * the server is shutting down or starting (57P01-57P03), a connection-class error (08xxx), or the
 * pool could not connect in time. Requests answer these with 503 and Retry-After
 * (src/plugins/error-handler.ts); background loops retry them. See docs/operations.md.
 */

const NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND'])

/**
 * admin_shutdown, crash_shutdown, cannot_connect_now, the connection exception class, too_many_connections.
 * Not 08P01 (protocol_violation): the server answers it to a query text holding a NUL character,
 * on a connection that stays usable; it is a bad request value, not an outage.
 */
const SQLSTATE = /^(57P0[1-3]|08(?!P01)[0-9A-Z]{3}|53300)$/

/** node-postgres and pg-pool raise these as plain Errors, without a code. */
const MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error and is not queryable|Client was closed and is not queryable/i

function isConnectionErrorOnce(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && (NODE_CODES.has(code) || SQLSTATE.test(code))) return true
  // An AggregateError (a host name resolving to several addresses) holds one refusal per address.
  const inner = (err as { errors?: unknown }).errors
  if (Array.isArray(inner) && inner.length > 0 && inner.every(isConnectionErrorOnce)) return true
  const message = (err as { message?: unknown }).message
  return typeof message === 'string' && MESSAGES.test(message)
}

/** True when `err` (or an error it wraps as `cause`, as Drizzle does) is a lost or refused connection. */
export function isConnectionError(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (isConnectionErrorOnce(e)) return true
  }
  return false
}
