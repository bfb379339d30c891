/**
 * OpenAPI 3 from the route schemas (@fastify/swagger), UI at /documentation, JSON at
 * /documentation/json. Shared schemas with `$id` become named components (schemas/common.ts).
 * https://github.com/fastify/fastify-swagger
 */
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { sharedSchemas } from '../schemas/common.js'

export default fp(
  async (app) => {
    for (const s of sharedSchemas) app.addSchema(s)
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Consent ledger',
          version: '0.1.0',
          description:
            'Append-only, tamper-evident ledger of messaging opt-ins and opt-outs, with a pre-send check and Braze-compatible routes.',
        },
        components: {
          securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key' } },
        },
        security: [{ bearer: [] }],
      },
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (json.$id as string) || `def-${i}`,
      },
    })
    await app.register(swaggerUi, { routePrefix: '/documentation' })
  },
  { name: 'swagger' },
)
