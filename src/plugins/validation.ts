/**
 * Request validation with two Ajv instances (https://fastify.dev/docs/latest/Reference/Validation-and-Serialization/):
 * - JSON bodies are validated strictly: no type coercion (`"1"` is not a number, `1` is not a
 *   string) and unknown fields are rejected, not silently stripped (STYLE P6);
 * - querystrings, params and headers arrive as text, so they are coerced (`?limit=10`).
 * Shared `$id` schemas are added to both so `$ref`s resolve.
 */
import fp from 'fastify-plugin'
import { Ajv, type Options } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { sharedSchemas } from '../schemas/common.js'

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({ removeAdditional: false, useDefaults: true, allErrors: true, strict: false, ...options })
  addFormats(ajv)
  for (const s of sharedSchemas) ajv.addSchema(s)
  return ajv
}

export default fp(
  async (app) => {
    const strict = makeAjv({ coerceTypes: false })
    const text = makeAjv({ coerceTypes: 'array' })
    app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : text).compile(schema))
  },
  { name: 'validation' },
)
