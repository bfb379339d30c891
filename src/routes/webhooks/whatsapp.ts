/**
 * Meta WhatsApp webhook (docs/webhook.md), an encapsulated plugin: in this scope only,
 * `application/json` is parsed as a raw Buffer (up to 3 MiB), because the signature is an HMAC of
 * the exact bytes; every other route keeps the normal JSON parser and the 1 MiB limit.
 *
 *   GET  /webhooks/whatsapp   verification handshake: hub.mode=subscribe and hub.verify_token equal
 *                             (constant time) to WHATSAPP_VERIFY_TOKEN → 200 text/plain hub.challenge;
 *                             anything else (or no token configured) → 403.
 *   POST /webhooks/whatsapp   X-Hub-Signature-256 checked against every WHATSAPP_APP_SECRETS secret;
 *                             missing/wrong → 401, nothing stored. No secret configured → 503
 *                             `webhook_not_configured`, nothing stored: Meta retries a 5xx for days,
 *                             so once the secret is set nothing is lost (a 401 would say the same,
 *                             but 503 tells an operator the service, not Meta, is at fault).
 *                             Authentic: the raw payload is committed to the inbox, processed in
 *                             this request, and answered 200 whatever processing did. Its numbers
 *                             reach the workspaces the operator mapped them to.
 *   GET|POST /webhooks/whatsapp/{workspace_id}
 *                             the same for a workspace's own Meta app (`PUT /settings/whatsapp`):
 *                             its verify token, its app secrets; its payloads reach only that
 *                             workspace's own numbers (docs/webhook.md "Tenancy"). An unknown
 *                             workspace, or one without secrets, answers like a bad signature.
 * A replayed body (same bytes, same URL) is stored once and acknowledged with its first row.
 * Public routes (Meta has no API key): the rate limiter keys them per client IP.
 * https://developers.facebook.com/docs/graph-api/webhooks/getting-started
 */
import { randomBytes } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from '@fastify/type-provider-typebox'
import { DomainError } from '../../errors/domain-error.js'
import { ProblemRef } from '../../schemas/common.js'
import { HandshakeQuery, WebhookAckSchema } from '../../schemas/webhook.js'
import { parseSecrets, safeEqual, verifySignature } from '../../webhook/signature.js'
import { phoneNumberIdsOf } from '../../webhook/map-payload.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** Checked when a workspace has no secret, so that its answer takes as long as a wrong signature. */
const NO_SECRET = [randomBytes(32).toString('hex')]

/** Webhook bodies up to 3 MiB (docs/operations.md "Body limits"). */
export const WEBHOOK_BODY_LIMIT = 3 * 1024 * 1024

const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: ProblemRef } } })

/**
 * Meta's verification handshake: `hub.challenge` as text/plain when `hub.mode=subscribe` and the
 * token matches `expected` (compared in constant time); otherwise 403. `whose` names the token.
 */
function answerHandshake(
  reply: FastifyReply,
  q: Record<string, unknown>,
  expected: string | null | undefined,
  whose: string,
): FastifyReply {
  const token = q['hub.verify_token']
  const challenge = q['hub.challenge']
  if (!expected || q['hub.mode'] !== 'subscribe' || typeof token !== 'string' || typeof challenge !== 'string' || !safeEqual(token, expected)) {
    throw new DomainError(403, 'verification_failed', `hub.mode must be subscribe and hub.verify_token must match ${whose}`)
  }
  return reply.code(200).type('text/plain; charset=utf-8').header('x-content-type-options', 'nosniff').send(challenge)
}

type App = Parameters<FastifyPluginAsyncTypebox>[0]

const tags = ['whatsapp webhook']
const HANDSHAKE_OK = { description: 'hub.challenge, as text/plain', content: { 'text/plain': { schema: { type: 'string' } } } }
const SIGNATURE_HEADER = {
  type: 'object',
  properties: { 'x-hub-signature-256': { type: 'string', description: 'sha256=<hex>' } },
} as const
const TenantParams = Type.Object({ workspace_id: Type.String({ maxLength: 64, description: "The workspace id (see webhook_path in GET /settings/whatsapp)" }) })

/** GET /webhooks/whatsapp: the handshake of the operator's Meta app. */
function operatorHandshake(app: App, verifyToken: string | undefined): void {
  app.get(
    '/webhooks/whatsapp',
    {
      schema: {
        tags,
        summary: 'Meta webhook verification handshake',
        description: 'Answers `hub.challenge` as text/plain when `hub.mode=subscribe` and `hub.verify_token` matches WHATSAPP_VERIFY_TOKEN; otherwise 403.',
        security: [],
        querystring: HandshakeQuery,
        response: { 200: HANDSHAKE_OK, 403: problem('Verification failed'), 429: problem('Rate limited (per IP)') },
      },
    },
    async (request, reply) => answerHandshake(reply, request.query, verifyToken, 'the configured token'),
  )
}

/** POST /webhooks/whatsapp: payloads signed with one of the operator's app secrets. */
function operatorReceive(app: App, secrets: string[]): void {
  app.post(
    '/webhooks/whatsapp',
    {
      bodyLimit: WEBHOOK_BODY_LIMIT,
      schema: {
        tags,
        summary: 'Meta WhatsApp Cloud API webhook (messages, statuses, user_preferences)',
        description:
          'Signed with `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` (any configured app secret). ' +
          'The raw payload is committed to the inbox before the 200 and processed in the same request; ' +
          'every authentic payload answers 200, whatever its processing did. Bodies up to 3 MiB.',
        security: [],
        headers: SIGNATURE_HEADER,
        response: {
          200: WebhookAckSchema,
          401: problem('Missing or wrong signature; nothing stored'),
          413: problem('Body larger than 3 MiB'),
          415: problem('Not application/json'),
          429: problem('Rate limited (per IP)'),
          503: problem('No app secret configured (WHATSAPP_APP_SECRETS); nothing stored, Meta retries'),
        },
      },
    },
    async (request, reply) => {
      if (secrets.length === 0) {
        throw new DomainError(503, 'webhook_not_configured', 'WHATSAPP_APP_SECRETS is not set: webhook signatures cannot be checked, so nothing is accepted')
      }
      const raw = request.body
      if (!Buffer.isBuffer(raw) || !verifySignature(raw, request.headers['x-hub-signature-256'], secrets)) {
        throw new DomainError(401, 'invalid_signature', 'X-Hub-Signature-256 is missing or does not match the body under any configured app secret')
      }
      const { id, status } = await app.whatsapp.processor.receive(raw, { requestId: request.id, log: request.log })
      return reply.code(200).send({ received: true as const, inbox_id: id, status })
    },
  )
}

/** GET /webhooks/whatsapp/{workspace_id}: the handshake of a workspace's own Meta app. */
function workspaceHandshake(app: App): void {
  app.get(
    '/webhooks/whatsapp/:workspace_id',
    {
      schema: {
        tags,
        summary: "Meta webhook verification handshake for a workspace's own Meta app",
        description: "Answers `hub.challenge` as text/plain when `hub.mode=subscribe` and `hub.verify_token` matches the workspace's verify token (`PUT /settings/whatsapp`); otherwise 403.",
        security: [],
        params: TenantParams,
        querystring: HandshakeQuery,
        response: { 200: HANDSHAKE_OK, 403: problem('Verification failed'), 429: problem('Rate limited (per IP)') },
      },
    },
    async (request, reply) => {
      const id = request.params.workspace_id
      const own = UUID.test(id) ? await app.settings.whatsapp.read(id.toLowerCase()) : null
      return answerHandshake(reply, request.query, own?.verifyToken, "the workspace's verify token")
    },
  )
}

/** The numbers a payload names; none when it is not JSON. */
function numbersOf(raw: Buffer): string[] {
  try {
    return phoneNumberIdsOf(JSON.parse(raw.toString('utf8')))
  } catch {
    return []
  }
}

/** POST /webhooks/whatsapp/{workspace_id}: payloads signed with one of a workspace's own app secrets. */
function workspaceReceive(app: App): void {
  app.post(
    '/webhooks/whatsapp/:workspace_id',
    {
      bodyLimit: WEBHOOK_BODY_LIMIT,
      schema: {
        tags,
        summary: "Meta WhatsApp Cloud API webhook from a workspace's own Meta app",
        description:
          "Signed with one of the workspace's own app secrets (`PUT /settings/whatsapp`); reaches only that workspace's own numbers " +
          '(`POST /whatsapp/numbers`), and verifies them. Otherwise as `POST /webhooks/whatsapp`.',
        security: [],
        params: TenantParams,
        headers: SIGNATURE_HEADER,
        response: {
          200: WebhookAckSchema,
          401: problem('Missing or wrong signature, or no such workspace URL; nothing stored'),
          413: problem('Body larger than 3 MiB'),
          415: problem('Not application/json'),
          429: problem('Rate limited (per IP)'),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.workspace_id.toLowerCase()
      const own = UUID.test(id) ? await app.settings.whatsapp.read(id) : { secrets: [] }
      const raw = request.body
      const signed = Buffer.isBuffer(raw) && verifySignature(raw, request.headers['x-hub-signature-256'], own.secrets.length > 0 ? own.secrets : NO_SECRET)
      if (!signed || own.secrets.length === 0) {
        throw new DomainError(401, 'invalid_signature', "X-Hub-Signature-256 is missing or does not match the body under the workspace's app secrets")
      }
      const { id: inboxId, status } = await app.whatsapp.processor.receive(raw, { requestId: request.id, log: request.log, workspaceId: id })
      // The workspace's claims of the numbers its own app sent are verified (informational: a claim
      // receives its own app's payloads either way).
      await app.whatsapp.numbers.verifyClaims(id, numbersOf(raw)).catch((err) => request.log.warn({ err }, 'verifying the claims of a signed payload failed'))
      return reply.code(200).send({ received: true as const, inbox_id: inboxId, status })
    },
  )
}

const whatsappWebhook: FastifyPluginAsyncTypebox = async (app) => {
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT }, (_request, body, done) => done(null, body))
  operatorHandshake(app, app.config.WHATSAPP_VERIFY_TOKEN)
  operatorReceive(app, parseSecrets(app.config.WHATSAPP_APP_SECRETS))
  workspaceHandshake(app)
  workspaceReceive(app)
}

export default whatsappWebhook
