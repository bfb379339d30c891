/** Keyword settings (`GET|PUT /settings/keywords`, docs/webhook.md). */
import { Type, type Static } from '@fastify/type-provider-typebox'
import { KEYWORD_MAX_LENGTH, MAX_RULES } from '../webhook/keywords.js'

export const KeywordRuleSchema = Type.Object(
  {
    keyword: Type.String({
      minLength: 1,
      maxLength: 256,
      description: `Stored normalised and upper-case (surrounding punctuation and emoji dropped, inner white space collapsed), at most ${KEYWORD_MAX_LENGTH} characters.`,
    }),
    action: Type.Union([Type.Literal('opt_out'), Type.Literal('opt_in')], {
      description: '`opt_out`: unsubscribe the scope. `opt_in`: restore the groups of the contact\'s latest keyword opt-out (within the scope).',
    }),
    scope: Type.Union(
      [
        Type.Literal('all'),
        Type.Literal('marketing'),
        Type.Array(Type.String({ format: 'uuid' }), { minItems: 1, maxItems: 100, uniqueItems: true }),
      ],
      { description: '`all` (every WhatsApp group of the workspace), `marketing` (its marketing groups), or WhatsApp subscription group ids.' },
    ),
  },
  { additionalProperties: false },
)

export const KeywordSettingsSchema = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Master toggle: false = inbound messages record nothing (Meta stop/resume and 131050 still apply).' }),
    mode: Type.Union([Type.Literal('exact'), Type.Literal('lenient')], {
      description: '`exact`: the whole normalised message equals a keyword. `lenient`: also typed messages of at most 4 words that contain an opt-out keyword.',
    }),
    rules: Type.Array(KeywordRuleSchema, { maxItems: MAX_RULES }),
  },
  { additionalProperties: false },
)
export type KeywordSettingsBody = Static<typeof KeywordSettingsSchema>
