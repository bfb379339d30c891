/**
 * `GET|PUT /settings/whatsapp`: the workspace's own Meta app, for a workspace whose WhatsApp
 * webhooks come from its own app rather than the operator's (docs/webhook.md "Tenancy"). PUT
 * (admin) replaces the app secrets (rotation: a list) and the verify token; GET (admin, because it
 * describes a credential) and PUT answer them masked, never in full. Payloads POSTed to
 * `webhook_path` and signed with one of these secrets reach only this workspace's own numbers.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import { WhatsAppSettingsInput, WhatsAppSettingsSchema } from '../../schemas/settings.js'
import type { WorkspaceWhatsApp } from '../../settings/whatsapp-settings-repository.js'
import { replyIdempotent } from '../idempotent-reply.js'

const mask = (secret: string) => `****${secret.slice(-4)}`

const view = (workspaceId: string, s: WorkspaceWhatsApp) => ({
  app_secrets: s.secrets.map(mask),
  verify_token_set: s.verifyToken !== null,
  webhook_path: `/webhooks/whatsapp/${workspaceId}`,
})

const whatsappSettings: FastifyPluginAsyncTypebox = async (app) => {
  const tags = ['settings']

  app.get(
    '/settings/whatsapp',
    {
      config: { scope: 'admin' },
      schema: { tags, summary: "Read the workspace's own WhatsApp app settings (secrets masked)", response: { 200: WhatsAppSettingsSchema, ...errorResponses() } },
    },
    async (request) => view(request.principal.workspaceId, await app.settings.whatsapp.read(request.principal.workspaceId)),
  )

  app.put(
    '/settings/whatsapp',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "Replace the workspace's own WhatsApp app secrets and verify token",
        description: 'Accepts `Idempotency-Key`. The answer shows the secrets masked.',
        body: WhatsAppSettingsInput,
        response: { 200: WhatsAppSettingsSchema, ...errorResponses(409, 415, 422) },
      },
    },
    async (request, reply) =>
      replyIdempotent(app, request, reply, async (tx) => {
        const ws = request.principal.workspaceId
        const { app_secrets: secrets, verify_token: verifyToken } = request.body
        await app.settings.whatsapp.write(tx, ws, { secrets, verifyToken })
        return { statusCode: 200, body: view(ws, { secrets, verifyToken }) }
      }),
  )
}

export default whatsappSettings
