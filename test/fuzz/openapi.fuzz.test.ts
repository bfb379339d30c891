/**
 * Property-based fuzz test over EVERY operation of openapi/openapi.json (docs/input-rules.md): no
 * request, however malformed, may answer 5xx. Operations are read from the committed document, so a
 * new route is fuzzed without touching this file.
 *
 * For each path and method, fast-check generates requests from the operation's own schemas (path
 * ids, querystring parameters, JSON body), then mutates them: a subtree replaced by a hostile value
 * (NUL, unpaired surrogates, 1e999 and other non-finite or huge numbers, deep nesting, wrong types,
 * `__proto__` / `constructor` / `prototype` keys, very long strings, impossible dates, random ids),
 * hostile keys added, raw malformed percent-encodings in the URL, odd content types. Requests carry a
 * valid key (the root key for /workspaces, otherwise a workspace admin key or the root key); the
 * webhook's body is signed with the configured app secret, so signature checking does not stop
 * every request at 401.
 *
 * The run is deterministic for a seed: FUZZ_SEED=<n> replays one (each run logs its seed), and
 * fast-check prints the shrunk counterexample of a failure with the seed and path to replay it.
 * FUZZ_RUNS sets the requests per operation (default 64: about 3,000 requests in all).
 */
import t from 'tap'
import fc from 'fast-check'
import { createHmac, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { buildTestApp, newGroup, newWorkspace } from '../helpers/build-app.js'

interface Schema {
  type?: string | string[]
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
  oneOf?: Schema[]
  allOf?: Schema[]
  $ref?: string
  nullable?: boolean
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  items?: Schema
  minItems?: number
  maxItems?: number
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  format?: string
  default?: unknown
}
interface Parameter {
  in: 'query' | 'path' | 'header'
  name: string
  required?: boolean
  schema: Schema
}
interface Operation {
  parameters?: Parameter[]
  requestBody?: { content: Record<string, { schema: Schema }> }
}

const doc = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, Schema> }
}
const METHODS = ['get', 'post', 'put', 'patch', 'delete']
const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
  Object.entries(ops)
    .filter(([m]) => METHODS.includes(m))
    .map(([method, op]) => ({ path, method: method.toUpperCase() as 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', op })),
)

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (process.pid << 8)) | 0
const RUNS = Number(process.env.FUZZ_RUNS ?? 64)
const SECRET = 'fuzz-app-secret'

// ------------------------------------------------------------------------------ hostile values

/** A JSON number written as given (`1e999`, `-0`, 400 digits): JSON.stringify cannot write these. */
class RawNumber {
  constructor(readonly text: string) {}
}
/** JSON text inserted as is: hostile nesting, kept as text so the test's own code never recurses into it. */
class RawJson {
  constructor(readonly text: string) {}
  toString() {
    return `RawJson(${this.text.length} chars: ${this.text.slice(0, 12)}...)`
  }
}
/** A querystring or path value inserted without percent-encoding (`%ED%A0%80`, `%`, `%C0`). */
class RawUrl {
  constructor(readonly text: string) {}
}

const nul = fc.string({ maxLength: 8 }).map((s) => `${s}\u0000${s}`)
const loneSurrogate = fc
  .tuple(fc.string({ maxLength: 6 }), fc.integer({ min: 0xd800, max: 0xdfff }))
  .map(([s, c]) => `${s}${String.fromCharCode(c)}${s}`)
const hostileString = fc.oneof(
  nul,
  loneSurrogate,
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '\t', 'null', 'undefined', 'NaN', 'Infinity', '-1', '0', '1e999', 'true', '{}', '[]', '__proto__', 'constructor'),
  fc.constantFrom('0000-01-01T00:00:00Z', '2026-02-30T00:00:00Z', '9999-12-31T23:59:59-01:00', '+275760-09-13T00:00:00Z', '2026-01-01T24:00:00Z', '2026-13-01', '1970-01-01T00:00:00Z'),
  fc.constantFrom("'; DROP TABLE contacts; --", '%00', '\\u0000', '../../etc/passwd', '=cmd|calc', '+14155552671', '972987654321', 'US.abc', '😀'.repeat(30)),
  fc.uuid(),
  fc.integer({ min: 1, max: 4 }).map((k) => 'x'.repeat(k * 20_000)),
)
const hostileNumber = fc.oneof(
  fc.constantFrom('1e999', '-1e999', '1e308', '-1e308', '9007199254740993', '-0', '1e-400', '0.1e1', '2147483648', '-2147483649', '9'.repeat(400)).map((s) => new RawNumber(s)),
  fc.double(),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
)
const deep = fc
  .tuple(fc.integer({ min: 30, max: 3000 }), fc.boolean())
  .map(([n, arrays]) => new RawJson(arrays ? `${'['.repeat(n)}${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`))
const protoKeys = fc
  .constantFrom('__proto__', 'constructor', 'prototype')
  .chain((k) => fc.constantFrom<unknown>(JSON.parse(`{"${k}":{"admin":true}}`), JSON.parse(`{"${k}":{"prototype":{"x":1}}}`), { [k]: 1 }))
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 3, arbitrary: hostileNumber },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: protoKeys },
  { weight: 2, arbitrary: fc.constantFrom<unknown>(null, true, false, [], {}, [null], { '': '' }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
)
const hostileKey = fc.oneof(nul, loneSurrogate, fc.constantFrom('__proto__', 'constructor', 'prototype', '', 'a/b', '~0', 'x'.repeat(1000)), fc.string())

// ------------------------------------------------------------------------- schema → generator

function resolve(s: Schema): Schema {
  if (!s.$ref) return s
  const name = s.$ref.split('/').pop()!
  return doc.components?.schemas?.[name] ?? {}
}

interface Known {
  ids: string[]
  /** Leaves (strings, numbers) sometimes hostile: a well-shaped request with one bad value in it. */
  dirty?: boolean
}

/** A leaf: valid mostly, hostile of a similar kind sometimes when `known.dirty`. */
function leaf(valid: fc.Arbitrary<unknown>, bad: fc.Arbitrary<unknown>, known: Known): fc.Arbitrary<unknown> {
  return known.dirty ? fc.oneof({ weight: 3, arbitrary: valid }, { weight: 1, arbitrary: bad }) : valid
}
const textual = () => fc.oneof({ weight: 3, arbitrary: fc.oneof(nul, loneSurrogate) }, { weight: 1, arbitrary: hostileString })

/** Values valid (or nearly) for `schema`: what a careful client sends. */
function fromSchema(input: Schema, known: Known, depth = 0): fc.Arbitrary<unknown> {
  const s = resolve(input)
  if (depth > 6) return fc.constant(null)
  if (s.const !== undefined) return fc.constant(s.const)
  if (s.enum) return leaf(fc.constantFrom(...s.enum), textual(), known)
  const alts = s.anyOf ?? s.oneOf
  let arb: fc.Arbitrary<unknown>
  if (alts && alts.length > 0) arb = fc.oneof(...alts.map((a) => fromSchema(a, known, depth + 1)))
  else if (s.allOf && s.allOf.length > 0) {
    const merged: Schema = { type: 'object', properties: {}, required: [] }
    for (const part of s.allOf.map(resolve)) {
      Object.assign(merged.properties!, part.properties ?? {})
      merged.required!.push(...(part.required ?? []))
    }
    arb = fromSchema(merged, known, depth + 1)
  } else {
    const type = Array.isArray(s.type) ? s.type : s.type ? [s.type] : s.properties ? ['object'] : ['string', 'integer', 'object']
    arb = fc.oneof(...type.map((ty) => ofType(ty, s, known, depth)))
  }
  return s.nullable ? fc.oneof(arb, fc.constant(null)) : arb
}

function ofType(type: string, s: Schema, known: Known, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case 'null':
      return fc.constant(null)
    case 'boolean':
      return fc.boolean()
    case 'integer':
      return leaf(fc.integer({ min: Math.max(s.minimum ?? -1000, -1e9), max: Math.min(s.maximum ?? 1000, 1e9) }), hostileNumber, known)
    case 'number':
      return leaf(fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true }), hostileNumber, known)
    case 'array':
      return fc.array(s.items ? fromSchema(s.items, known, depth + 1) : fc.jsonValue({ maxDepth: 2 }), {
        minLength: Math.min(s.minItems ?? 0, 3),
        maxLength: Math.max(Math.min(s.maxItems ?? 3, 3), Math.min(s.minItems ?? 0, 3)),
      })
    case 'object': {
      const props = s.properties ?? {}
      const required = new Set(s.required ?? [])
      const record: Record<string, fc.Arbitrary<unknown>> = {}
      for (const [k, v] of Object.entries(props)) record[k] = fromSchema(v, known, depth + 1)
      const base = fc.record(record, { requiredKeys: Object.keys(props).filter((k) => required.has(k)) })
      if (s.additionalProperties === false || Object.keys(props).length > 0) return base
      return fc.tuple(base, fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })).map(([a, b]) => ({ ...b, ...a }))
    }
    default: {
      if (s.format === 'uuid') return leaf(fc.oneof(fc.constantFrom(...known.ids), fc.uuid()), textual(), known)
      if (s.format === 'date-time') return leaf(fc.date({ min: new Date('2000-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }).map((d) => d.toISOString()), hostileString, known)
      return leaf(fc.oneof(
        { weight: 3, arbitrary: fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 20, 20) }) },
        { weight: 2, arbitrary: fc.constantFrom(...known.ids) },
        { weight: 1, arbitrary: fc.constantFrom('+14155552671', '+447911123456', 'user-1', 'US.abc123', 'subscribed', 'unsubscribed', 'whatsapp', 'marketing', '2026-01-01T00:00:00Z') },
      ), textual(), known)
    }
  }
}

/** Replace the `pick`-th node of `value` (pre-order, modulo their count) by `by`, or add key `key`. */
function mutate(value: unknown, pick: number, by: unknown, key: string | null): unknown {
  const nodes: { parent: unknown; at: string | number }[] = []
  const walk = (v: unknown, parent: unknown, at: string | number) => {
    nodes.push({ parent, at })
    if (nodes.length > 500 || v === null || typeof v !== 'object' || v instanceof RawNumber || v instanceof RawJson) return
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, v, i))
    else for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], v, k)
  }
  const root = { v: structuredClone(value) }
  walk(root.v, root, 'v')
  const node = nodes[pick % nodes.length]!
  const target = (node.parent as Record<string | number, unknown>)[node.at]
  if (key !== null && target !== null && typeof target === 'object' && !Array.isArray(target)) {
    Object.defineProperty(target, key, { value: by, enumerable: true, configurable: true, writable: true })
  } else (node.parent as Record<string | number, unknown>)[node.at] = by
  return root.v
}

/** JSON text, with RawNumber written as is. */
function toJson(v: unknown): string {
  if (v instanceof RawNumber || v instanceof RawJson) return v.text
  if (v === undefined) return 'null'
  if (v === null || typeof v !== 'object') return typeof v === 'number' && !Number.isFinite(v) ? 'null' : JSON.stringify(v)
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`
  return `{${Object.keys(v)
    .map((k) => `${JSON.stringify(k)}:${toJson((v as Record<string, unknown>)[k])}`)
    .join(',')}}`
}

/** Percent-encodes the UTF-8 bytes (an unpaired surrogate becomes U+FFFD's bytes: RawUrl sends others). */
function enc(v: unknown): string {
  if (v instanceof RawUrl) return v.text
  const s = v instanceof RawNumber || v instanceof RawJson ? v.text : typeof v === 'string' ? v : toJson(v)
  return [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('')
}

const rawUrl = fc.constantFrom('%ED%A0%80', '%', '%C0', '%FF%FE', '%00', '%E0%80%80', '%F4%90%80%80').map((s) => new RawUrl(`a${s}b`))

/** A value for a parameter: from its schema mostly, else hostile or a raw malformed encoding. */
function paramValue(s: Schema, known: Known): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 5, arbitrary: fromSchema(s, known) }, { weight: 3, arbitrary: hostile }, { weight: 1, arbitrary: rawUrl })
}

interface FuzzRequest {
  method: string
  url: string
  headers: Record<string, string>
  body?: string | Buffer
}

// --------------------------------------------------------------------------------------- test

t.test(`every OpenAPI operation, fuzzed: no 5xx (seed ${SEED}, ${RUNS} runs per operation)`, async (t) => {
  t.comment(`fuzz seed ${SEED} (replay: FUZZ_SEED=${SEED}); ${operations.length} operations x ${RUNS} runs`)
  const ta = await buildTestApp(t, {
    WHATSAPP_APP_SECRETS: SECRET,
    WHATSAPP_VERIFY_TOKEN: 'fuzz-verify-token',
    RATE_LIMIT_MAX: '100000000',
    LOG_LEVEL: process.env.FUZZ_LOG_LEVEL ?? 'silent',
  })
  const ws = await newWorkspace(ta, 'fuzz')
  const group = await newGroup(ta, ws.auth)
  // Ids of existing things, so that generated requests reach past "not found".
  const created = await ta.app.inject({
    method: 'POST',
    url: '/consent/events',
    headers: ws.auth,
    payload: { events: [{ external_id: 'fuzz-user', phone: '+14155552671', subscription_group_id: group, state: 'subscribed' }] },
  })
  const contact = created.json().results[0].contact_id as string
  const spareKey = (await ta.app.inject({ method: 'POST', url: '/api-keys', headers: ws.auth, payload: { name: 'spare', scopes: ['consent:read'] } })).json().id as string
  await ta.app.inject({ method: 'POST', url: '/whatsapp/numbers', headers: ws.auth, payload: { phone_number_id: '1234567890' } })
  const imp = await ta.app.inject({ method: 'POST', url: `/imports?subscription_group_id=${group}`, headers: { ...ws.auth, 'content-type': 'text/csv' }, payload: 'phone,subscription_state\n+14155552672,subscribed\n' })
  const metaText = readFileSync(new URL('../fixtures/meta-text.json', import.meta.url), 'utf8')
  const sign = (body: Buffer) => `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`
  const inbox = await ta.app.inject({ method: 'POST', url: '/webhooks/whatsapp', headers: { 'content-type': 'application/json', 'x-hub-signature-256': sign(Buffer.from(metaText)) }, payload: metaText })
  const known: Known = {
    ids: [group, contact, spareKey, ws.id, '1234567890', imp.json().id, String(inbox.json().inbox_id ?? '1'), randomUUID(), '00000000-0000-0000-0000-000000000000'].filter(Boolean),
  }
  const metaSample = JSON.parse(metaText) as unknown

  let total = 0
  const statuses = new Map<number, number>()

  for (const { path, method, op } of operations) {
    const params = op.parameters ?? []
    const pathNames = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!)
    const queryParams = params.filter((p) => p.in === 'query')
    const jsonSchema = op.requestBody?.content['application/json']?.schema
    const csv = op.requestBody?.content['text/csv'] !== undefined
    const webhook = path === '/webhooks/whatsapp' && method === 'POST'
    const auths =
      path.startsWith('/workspaces') ? [ta.root] : [ws.auth, ws.auth, ta.root]

    const pathArb = fc.tuple(...pathNames.map(() => fc.oneof({ weight: 4, arbitrary: fc.constantFrom<unknown>(...known.ids) }, { weight: 2, arbitrary: hostile }, { weight: 1, arbitrary: rawUrl })))
    const queryArb = fc.tuple(...queryParams.map((p) => fc.option(paramValue(p.schema, { ...known, dirty: true }), { nil: undefined, freq: p.required ? 8 : 2 })))
    const extraQuery = fc.option(fc.tuple(hostileKey, hostile), { nil: undefined, freq: 6 })
    const bodyOf = (k: Known): fc.Arbitrary<unknown> => (webhook ? fc.constant(metaSample) : jsonSchema ? fromSchema(jsonSchema, k) : fc.constant(undefined))
    const validBody = bodyOf(known)
    const dirtyBody = bodyOf({ ...known, dirty: true })
    const mutation = fc.tuple(fc.nat(), hostile, fc.option(hostileKey, { nil: null }))
    const bodyArb = fc.oneof(
      { weight: 2, arbitrary: validBody },
      { weight: 4, arbitrary: dirtyBody },
      {
        weight: 4,
        arbitrary: fc
          .tuple(validBody, fc.array(mutation, { minLength: 1, maxLength: 3 }))
          .map(([v, ms]) => (v === undefined ? ms[0]![1] : ms.reduce<unknown>((acc, [pick, by, key]) => mutate(acc, pick, by, key), v))),
      },
      { weight: 1, arbitrary: hostile },
    )
    const rawBody = fc.oneof(
      { weight: 12, arbitrary: bodyArb.map((b) => (b === undefined ? undefined : toJson(b))) },
      { weight: 1, arbitrary: fc.constantFrom('{', '{"a":}', '[1,]', 'nul', '\u0000', '{"a":"\\ud800"}', '{"a":"\\u0000"}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}', ' ') },
      { weight: csv ? 8 : 0, arbitrary: fc.array(fc.array(fc.oneof(fc.string(), hostileString.map(String)), { maxLength: 5 }), { maxLength: 6 }).map((rows) => ['phone,external_id,subscription_group_id,subscription_state,occurred_at', ...rows.map((r) => r.join(','))].join('\n')) },
    )
    const contentType = csv
      ? fc.constantFrom('text/csv', 'text/csv', 'text/csv; charset=utf-8', 'application/json')
      : fc.constantFrom('application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', '')
    const headerArb = fc.record(
      {
        auth: fc.constantFrom(...auths),
        contentType,
        idempotencyKey: fc.option(fc.oneof(fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 }), fc.uuid()), { nil: undefined, freq: 4 }),
        signature: fc.constantFrom('good', 'good', 'good', 'bad', 'none'),
      },
      { requiredKeys: ['auth', 'contentType', 'signature'] },
    )

    const requestArb: fc.Arbitrary<FuzzRequest> = fc.tuple(pathArb, queryArb, extraQuery, rawBody, headerArb).map(([pathValues, queryValues, extra, body, h]) => {
      let i = 0
      const url = path.replace(/\{\w+\}/g, () => enc(pathValues[i++]))
      const qs: string[] = []
      queryParams.forEach((p, k) => {
        const v = queryValues[k]
        if (v === undefined) return
        for (const one of Array.isArray(v) ? v : [v]) qs.push(`${enc(p.name)}=${enc(one)}`)
      })
      if (extra) qs.push(`${enc(extra[0])}=${enc(extra[1])}`)
      const headers: Record<string, string> = { ...h.auth }
      if (h.idempotencyKey !== undefined) headers['idempotency-key'] = h.idempotencyKey
      const req: FuzzRequest = { method, url: qs.length > 0 ? `${url}?${qs.join('&')}` : url, headers }
      if (body !== undefined && method !== 'GET') {
        if (h.contentType) headers['content-type'] = h.contentType
        req.body = body
        if (webhook && h.signature !== 'none') headers['x-hub-signature-256'] = h.signature === 'good' ? sign(Buffer.from(body, 'utf8')) : sign(Buffer.from(`${body} `, 'utf8'))
      }
      return req
    })

    t.test(`${method} ${path}`, async (t) => {
      const failure = await fc.check(
        fc.asyncProperty(requestArb, async (req) => {
          let r
          try {
            r = await ta.app.inject({ method: req.method as 'GET', url: req.url, headers: req.headers, ...(req.body !== undefined ? { payload: req.body } : {}) })
          } catch (err) {
            // light-my-request refusing to build the request (an invalid header value) is the
            // client's refusal, not the server's answer.
            if (err instanceof TypeError || (err as { code?: string }).code?.startsWith('ERR_')) return true
            throw err
          }
          total++
          statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1)
          if (r.statusCode >= 500) throw new Error(`${req.method} ${req.url.slice(0, 300)} answered ${r.statusCode}: ${r.body.slice(0, 300)}`)
          return true
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: false },
      )
      if (failure.failed) t.fail(fc.defaultReportMessage(failure) ?? 'failed')
      else t.pass(`${failure.numRuns} requests, none 5xx`)
    })
  }

  t.teardown(() => {
    const seen = [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`).join(', ')
    console.log(`# fuzz: ${total} requests over ${operations.length} operations (seed ${SEED}); statuses ${seen}`)
  })
})

t.test('every integer and number a request takes is bounded in the OpenAPI document', async (t) => {
  const unbounded: string[] = []
  const visit = (s: Schema | undefined, where: string) => {
    if (!s) return
    s = resolve(s)
    const types = Array.isArray(s.type) ? s.type : [s.type]
    if ((types.includes('integer') || types.includes('number')) && (s.minimum === undefined || s.maximum === undefined) && !s.enum) unbounded.push(where)
    for (const [k, v] of Object.entries(s.properties ?? {})) visit(v, `${where}/${k}`)
    if (s.items) visit(s.items, `${where}/items`)
    for (const alt of [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])]) visit(alt, where)
    if (typeof s.additionalProperties === 'object') visit(s.additionalProperties, `${where}/*`)
  }
  for (const { path, method, op } of operations) {
    for (const p of op.parameters ?? []) visit(p.schema, `${method} ${path} ${p.in}:${p.name}`)
    visit(op.requestBody?.content['application/json']?.schema, `${method} ${path} body`)
  }
  t.same(unbounded, [], 'numeric request fields without minimum and maximum')
})
