/** The committed openapi/openapi.json must equal the document generated from the route schemas. */
import t from 'tap'
import { buildTestApp } from './helpers/build-app.js'
import { readCommittedOpenApi, renderOpenApi } from '../src/openapi/generate.js'

t.test('openapi/openapi.json is current (run `npm run openapi` after changing a route)', async (t) => {
  const { app } = await buildTestApp(t)
  const generated = await renderOpenApi(app)
  const committed = readCommittedOpenApi()
  t.equal(committed, generated, 'regenerate with `npm run openapi`')
  const spec = JSON.parse(generated)
  t.ok(spec.components.schemas.Problem, 'Problem is a named component')
  // Every route documents its error responses.
  const undocumented: string[] = []
  for (const [path, ops] of Object.entries<Record<string, { responses: Record<string, unknown>; security?: unknown[] }>>(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const codes = Object.keys(op.responses ?? {})
      const isPublic = Array.isArray(op.security) && op.security.length === 0
      if (!isPublic && !codes.some((c) => c.startsWith('4'))) undocumented.push(`${method.toUpperCase()} ${path}`)
    }
  }
  t.same(undocumented, [], 'every authenticated route documents 4xx answers')
})

t.test('the UI and the JSON are served', async (t) => {
  const { app } = await buildTestApp(t)
  const json = await app.inject({ url: '/documentation/json' })
  t.equal(json.statusCode, 200)
  t.equal(json.json().openapi, '3.0.3')
  const ui = await app.inject({ url: '/documentation/' })
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /html/)
})
