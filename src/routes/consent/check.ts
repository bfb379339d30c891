/** `POST /consent/check` (up to 10,000 identifiers) and `GET /consent/check` (one). Scope consent:read. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CheckBody, CheckQuery, CheckResponse, CheckResultSchema } from '../../schemas/check.js'
import { errorResponses } from '../../schemas/common.js'
import { badRequest } from '../../errors/domain-error.js'
import type { IdentityType } from '../../contacts/identity.js'
import type { CheckTarget } from '../../check/check-service.js'

const MAX_IDENTIFIERS = 10_000

function targetOf(q: CheckTarget): CheckTarget {
  if (q.subscription_group_id !== undefined) {
    if (q.channel !== undefined || q.category !== undefined) {
      throw badRequest('invalid_target', 'give either subscription_group_id or channel + category, not both')
    }
    return { subscription_group_id: q.subscription_group_id, phone_number_id: q.phone_number_id }
  }
  if (q.channel === undefined || q.category === undefined) {
    throw badRequest('invalid_target', 'give subscription_group_id, or channel and category', [
      { pointer: '/body/subscription_group_id', message: 'required unless channel and category are given' },
    ])
  }
  return { channel: q.channel, category: q.category, phone_number_id: q.phone_number_id }
}

const check: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/consent/check',
    {
      config: { scope: 'consent:read' },
      schema: {
        tags: ['consent'],
        summary: 'Pre-send check: may I send these people this kind of message now?',
        body: CheckBody,
        response: { 200: CheckResponse, ...errorResponses(404, 413, 415, 422) },
      },
      // The schemas document the answer; the check service builds exactly those fields. For a large
      // answer (up to 10,000 results) fast-json-stringify is several times slower than
      // JSON.stringify, and serializing is a large share of the request (docs/performance.md).
      serializerCompiler: () => (data) => JSON.stringify(data),
    },
    async (request) => {
      const b = request.body
      const target = targetOf(b)
      const ids: { type: IdentityType; value: string }[] = [
        ...(b.phones ?? []).map((value) => ({ type: 'phone' as const, value })),
        ...(b.external_ids ?? []).map((value) => ({ type: 'external_id' as const, value })),
        ...(b.bsuids ?? []).map((value) => ({ type: 'bsuid' as const, value })),
      ]
      if (ids.length === 0) throw badRequest('no_identifiers', 'give at least one of phones, external_ids or bsuids')
      if (ids.length > MAX_IDENTIFIERS) throw badRequest('too_many_identifiers', `at most ${MAX_IDENTIFIERS} identifiers per request`)
      return { results: await app.checks.check(request.principal.workspaceId, target, ids) }
    },
  )

  app.get(
    '/consent/check',
    {
      config: { scope: 'consent:read' },
      schema: {
        tags: ['consent'],
        summary: 'Pre-send check for one identifier',
        querystring: CheckQuery,
        response: { 200: CheckResultSchema, ...errorResponses(404, 422) },
      },
    },
    async (request) => {
      const q = request.query
      const given = (['phone', 'external_id', 'bsuid'] as const).filter((k) => q[k] !== undefined)
      if (given.length !== 1) throw badRequest('invalid_identifier', 'give exactly one of phone, external_id or bsuid')
      const type = given[0]!
      const [result] = await app.checks.check(request.principal.workspaceId, targetOf(q), [{ type, value: q[type]! }])
      return result!
    },
  )
}

export default check
