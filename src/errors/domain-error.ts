/**
 * Domain errors carry their HTTP status and a stable machine-readable `code`; the root error handler
 * (src/plugins/error-handler.ts) turns them into RFC 9457 problem+json.
 */
export interface FieldError {
  /** JSON pointer into the request (`/body/events/3/phone`). */
  pointer: string
  code?: string
  message: string
}

export class DomainError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(message)
    this.name = 'DomainError'
  }
}

export const badRequest = (code: string, message: string, errors?: FieldError[]) =>
  new DomainError(400, code, message, errors)
export const unauthorized = (message = 'A valid API key is required (Authorization: Bearer <key>).') =>
  new DomainError(401, 'unauthorized', message, undefined, { 'www-authenticate': 'Bearer' })
export const forbidden = (message: string) => new DomainError(403, 'forbidden', message)
export const notFound = (what: string) => new DomainError(404, 'not_found', `${what} not found`)
export const conflict = (code: string, message: string) => new DomainError(409, code, message)
export const unprocessable = (code: string, message: string, errors?: FieldError[]) =>
  new DomainError(422, code, message, errors)
