/** Shared TypeBox schemas: primitives and named OpenAPI components (`$id` + addSchema: they become named components in the OpenAPI document). */
import { Type, type Static, type TSchema } from '@fastify/type-provider-typebox'
import { CheckResultSchema } from './check.js'

export const Uuid = Type.String({ format: 'uuid' })
export const DateTime = Type.String({ format: 'date-time' })

export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable machine-readable error code' }),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          pointer: Type.String({ description: 'JSON pointer into the request: /body/..., /querystring/...' }),
          code: Type.Optional(Type.String()),
          message: Type.String(),
        }),
      ),
    ),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details' },
)
export type Problem = Static<typeof ProblemSchema>

export const sharedSchemas: TSchema[] = [ProblemSchema, CheckResultSchema]

/** `$ref` to the Problem component, typed. */
export const ProblemRef = Type.Unsafe<Problem>(Type.Ref('Problem'))

/** Error responses every authenticated native route can give. */
export function errorResponses(...extra: number[]) {
  const codes = [400, 401, 403, 429, 500, ...extra]
  const out: Record<number, { description: string; content: { 'application/problem+json': { schema: typeof ProblemRef } } }> = {}
  for (const c of [...new Set(codes)].sort()) {
    out[c] = { description: PROBLEM_DESCRIPTIONS[c] ?? 'Error', content: { 'application/problem+json': { schema: ProblemRef } } }
  }
  return out
}

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request (validation_failed, malformed_json, ...)',
  401: 'Missing, unknown or revoked API key',
  403: 'The API key lacks the required scope',
  404: 'Not found (also for ids of other workspaces)',
  409: 'Conflict (e.g. idempotency_in_flight)',
  413: 'Body too large',
  415: 'Unsupported content type',
  422: 'Unprocessable (e.g. idempotency_key_reused, evidence_required)',
  429: 'Rate limited (see retry-after)',
  500: 'Unexpected error',
  503: 'Shutting down or unavailable',
}

export const IdParams = Type.Object({ id: Type.String({ description: 'uuid' }) }, { additionalProperties: false })
