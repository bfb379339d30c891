/** Per-workspace settings (`GET|PUT /settings/consent`, `GET|PUT /settings/whatsapp`). */
import { Type, type Static } from '@fastify/type-provider-typebox'

export const ConsentSettingsSchema = Type.Object(
  {
    require_evidence_to_override_opt_out: Type.Boolean({
      description:
        'When true (the default), an API, import or admin opt-in that would override an opt-out the person made themselves ' +
        '(keyword, button, Meta preference, 131050) needs `method` and evidence, or it fails with `evidence_required`.',
    }),
  },
  { additionalProperties: false },
)
export type ConsentSettings = Static<typeof ConsentSettingsSchema>

/**
 * `PUT /settings/whatsapp`: the workspace's own Meta app (docs/webhook.md "Tenancy"). Secrets are
 * write-only: answers show them masked.
 */
export const WhatsAppSettingsInput = Type.Object(
  {
    app_secrets: Type.Array(Type.String({ minLength: 16, maxLength: 256, pattern: '^[\\x21-\\x7e]+$' }), {
      maxItems: 5,
      uniqueItems: true,
      description:
        "Your Meta app's App Secret(s). Payloads POSTed to webhook_path must be signed with one of them. " +
        'Rotation: send [new, old], then [new] once Meta signs with the new one. An empty list turns webhook_path off.',
    }),
    verify_token: Type.String({
      minLength: 8,
      maxLength: 256,
      pattern: '^[\\x21-\\x7e]+$',
      description: "The Verify Token you enter in your app's webhook settings (checked by the GET handshake of webhook_path)",
    }),
  },
  { additionalProperties: false },
)

export const WhatsAppSettingsSchema = Type.Object({
  app_secrets: Type.Array(Type.String(), { description: 'The configured secrets, masked (their last 4 characters)' }),
  verify_token_set: Type.Boolean(),
  webhook_path: Type.String({ description: "The callback path for your app's webhook (prefix it with this service's public URL)" }),
})
