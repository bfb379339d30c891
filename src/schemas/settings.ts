/** Per-workspace settings (DESIGN §3.3 `GET|PUT /settings/consent`). */
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
