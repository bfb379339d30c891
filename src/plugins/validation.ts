/**
 * Request validation with two Ajv instances (https://fastify.dev/docs/latest/Reference/Validation-and-Serialization/):
 * - JSON bodies are validated strictly: no type coercion (`"1"` is not a number, `1` is not a
 *   string) and unknown fields are rejected, not silently stripped (docs/input-rules.md);
 * - querystrings, params and headers arrive as text, so they are coerced (`?limit=10`).
 * Both refuse non-finite numbers (`1e999` parses as Infinity) and check `date-time` strictly
 * (calendar, years 0001-9999: src/input/date-time.ts); docs/input-rules.md has the rules.
 * Shared `$id` schemas are added to both so `$ref`s resolve.
 * A route schema may carry, under VALIDATE_AS, a looser schema that is what Fastify validates,
 * while the documented one stays what the OpenAPI document shows: the Braze batch routes check
 * only their envelope there and each object themselves, so one bad object is an item error.
 */
import fp from 'fastify-plugin'
import { Ajv, type Options } from 'ajv'
import addFormatsModule from 'ajv-formats'
import { sharedSchemas } from '../schemas/common.js'
import { isDateTime } from '../input/date-time.js'

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

/** Symbol key (invisible to JSON and so to the OpenAPI document) of the schema actually validated. */
export const VALIDATE_AS = Symbol.for('consent-ledger.validate-as')

/** `documented`, validated as `envelope` (see VALIDATE_AS). */
export function validatedAs<T extends object>(documented: T, envelope: object): T {
  Object.defineProperty(documented, VALIDATE_AS, { value: envelope, enumerable: true })
  return documented
}

export function makeAjv(options: Options): Ajv {
  // strict: false relaxes schema-authoring checks, and with them strictNumbers: set it back.
  const ajv = new Ajv({ removeAdditional: false, useDefaults: true, allErrors: true, strict: false, strictNumbers: true, ...options })
  addFormats(ajv)
  ajv.addFormat('date-time', { type: 'string', validate: isDateTime })
  for (const s of sharedSchemas) ajv.addSchema(s)
  return ajv
}

export default fp(
  async (app) => {
    const strict = makeAjv({ coerceTypes: false })
    const text = makeAjv({ coerceTypes: 'array' })
    app.setValidatorCompiler(({ schema, httpPart }) => {
      const validated = (schema as { [VALIDATE_AS]?: object })[VALIDATE_AS] ?? schema
      return (httpPart === 'body' ? strict : text).compile(validated)
    })
  },
  { name: 'validation' },
)
