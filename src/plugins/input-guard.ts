/**
 * Refuses, before schema validation, request values that cannot be stored exactly: strings (values
 * and keys) holding a NUL character or an unpaired UTF-16 surrogate, and JSON nested deeper than
 * MAX_DEPTH (src/input/storable.ts; the rules are in docs/input-rules.md). Body, querystring and
 * path parameters are walked; a Buffer or stream body (the signed webhook, CSV uploads) is not,
 * because those routes keep the raw bytes and handle them themselves.
 *
 * The answer is a 400 `invalid_text` (or `too_deep`) with one `errors[]` entry per offending value,
 * as a JSON pointer (`/body/events/0/external_id`); Braze routes get the same in Braze's shape.
 * A route that reports such values per item instead (a Braze batch, where one bad object must not
 * fail the others) sets `config.inputGuard = 'envelope'`: its body is then walked only for depth,
 * and the route (or the ledger) refuses the offending items.
 *
 * Each route gets its own callback-style hook when it is added (as auth does): no promise per request.
 */
import fp from 'fastify-plugin'
import type { preValidationHookHandler } from 'fastify'
import { withFirst } from './route-hooks.js'
import { findUnstorable, MAX_DEPTH, type TextProblem } from '../input/storable.js'
import { badRequest } from '../errors/domain-error.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'all' (default): refuse the request; 'envelope': the route reports bad body strings per item. */
    inputGuard?: 'all' | 'envelope'
  }
}

function problemOf(found: TextProblem[]) {
  const deep = found.every((p) => p.code === 'too_deep')
  return badRequest(
    deep ? 'too_deep' : 'invalid_text',
    deep
      ? `The request is nested more than ${MAX_DEPTH} levels deep.`
      : 'The request holds text that cannot be stored: a NUL character (U+0000) or an unpaired UTF-16 surrogate.',
    found.map((p) => ({ pointer: p.pointer, code: p.code, message: p.message })),
  )
}

/** Depth problems only (for 'envelope' bodies). */
const depthOnly = (found: TextProblem[]) => found.filter((p) => p.code === 'too_deep')

export default fp(
  async (app) => {
    function hookFor(envelope: boolean): preValidationHookHandler {
      return (request, _reply, done) => {
        // The router's params and the querystring parser's result are not plain objects: copy them.
        let found = findUnstorable({ ...(request.params as object) }, '/params')
        if (request.query) found = found.concat(findUnstorable({ ...(request.query as object) }, '/querystring'))
        if (request.body !== undefined) {
          const body = findUnstorable(request.body, '/body')
          found = found.concat(envelope ? depthOnly(body) : body)
        }
        done(found.length > 0 ? problemOf(found) : undefined)
      }
    }
    const all = hookFor(false)
    const envelope = hookFor(true)
    app.addHook('onRoute', (route) => {
      route.preValidation = withFirst(route.config?.inputGuard === 'envelope' ? envelope : all, route.preValidation)
    })
  },
  { name: 'input-guard' },
)
