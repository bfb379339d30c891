/**
 * The Auditor API (docs/audit.md). Every route needs scope `audit:read` (admin implies it), except
 * `POST /audit/checkpoints`, which signs a checkpoint now, and `POST /audit/projection/rebuild`,
 * which repairs the projection from the ledger: both need `admin`. Nothing here writes to the
 * ledger; `POST /audit/verify` is a POST only because it is a (possibly long) computation.
 * Reads go to the read replica when DATABASE_READ_URL is set (src/audit/plugin.ts). Every query
 * is scoped by the key's workspace: another workspace's ids answer 404 like unknown ones.
 * Decisions are documented in src/audit/*.ts, next to the code, and in docs/audit.md.
 */
import { parseDateTime } from '../../input/date-time.js'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import {
  AuditEventsQuery,
  AuditEventsResponse,
  AuditExportQuery,
  AuditProofQuery,
  AuditStateQuery,
  AuditStateResponse,
  CheckpointsQuery,
  CheckpointsResponse,
  CreateCheckpointResponse,
  ProofSchema,
  ProjectionRebuildResponse,
  VerifyQuery,
  VerifyResponse,
} from '../../schemas/audit.js'
import { badRequest } from '../../errors/domain-error.js'
import { scoped, type RouteApp } from '../route-options.js'
import { csvStream, listEvents, ndjsonStream, resolveFilter } from '../../audit/events.js'
import { stateAt } from '../../audit/state.js'
import { listCheckpoints, type Checkpoint } from '../../audit/checkpoints.js'
import { checkpointMessage } from '../../audit/signing.js'
import { buildProof } from '../../audit/proof.js'
import { verifyWorkspace } from '../../audit/verify.js'
import type { IdentityType } from '../../contacts/identity.js'

const tags = ['audit']

/** Exactly one of the contact selectors. */
function oneSelector(q: { contact_id?: string; external_id?: string; phone?: string; bsuid?: string }): { contactId?: string; identifier?: { type: IdentityType; value: string } } {
  const given = (['phone', 'external_id', 'bsuid', 'contact_id'] as const).filter((k) => q[k] !== undefined)
  if (given.length !== 1) {
    throw badRequest('one_selector_required', 'give exactly one of phone, external_id, bsuid or contact_id', [
      { pointer: '/querystring', message: given.length === 0 ? 'no selector' : `several selectors: ${given.join(', ')}` },
    ])
  }
  const k = given[0]!
  return k === 'contact_id' ? { contactId: q.contact_id } : { identifier: { type: k, value: q[k]! } }
}

const withMessage = (c: Checkpoint) => ({ ...c, signed_message: checkpointMessage(c) })

/** `GET /audit/events` and its streamed form `GET /audit/export`. */
function eventRoutes(app: RouteApp) {
  app.get(
    '/audit/events',
    scoped('audit:read', {
      tags,
      summary: 'Ledger events with their hashes, by keyset pages in ledger order',
      description:
        'Every recorded field of each event, with `prev_hash` and `hash` (README "How an auditor verifies"). Pages are in ledger id ' +
        'order; follow `next_cursor` until it is null. Merges and moves appear with `source=merge`.',
      querystring: AuditEventsQuery,
      response: { 200: AuditEventsResponse, ...errorResponses(404) },
    }),
    async (request) => {
      const { cursor, limit, ...filters } = request.query
      return listEvents(app.audit.readSql, request.principal.workspaceId, { ...filters, cursor, limit: limit ?? 100 })
    },
  )

  app.get(
    '/audit/export',
    scoped('audit:read', {
      tags,
      summary: 'Every matching event, streamed (NDJSON or CSV)',
      description:
        'The filters of /audit/events, without pages: streamed in constant memory up to the last event that existed when the export ' +
        'started. `ndjson` (default): one event per line, exactly as /audit/events shows it. `csv`: a header row, the same fields ' +
        '(evidence as JSON, plus its usual fields as columns); text cells that start with = + - @ TAB or CR are prefixed with an ' +
        "apostrophe (formula injection), except E.164 phones in identity_value, which are written exactly. A response that ends " +
        'without its final chunk is incomplete.',
      querystring: AuditExportQuery,
      response: {
        200: {
          description: 'The events',
          content: {
            'application/x-ndjson': { schema: { type: 'string' } },
            'text/csv': { schema: { type: 'string' } },
          },
        },
        ...errorResponses(404),
      },
    }),
    async (request, reply) => {
      const { format = 'ndjson', ...filters } = request.query
      const ws = request.principal.workspaceId
      const sql = app.audit.readSql
      const resolved = await resolveFilter(sql, ws, filters)
      const stamp = new Date().toISOString().replace(/[:.]/g, '-')
      const stream = format === 'csv' ? csvStream(sql, ws, resolved) : ndjsonStream(sql, ws, resolved)
      stream.on('error', (err) => request.log.error({ err }, 'audit export failed mid-stream'))
      return reply
        .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
        .header('content-disposition', `attachment; filename="consent-events-${stamp}.${format}"`)
        .header('cache-control', 'no-store')
        .send(stream as never)
    },
  )
}

/** `GET /audit/state`: a person's consent as it was at a moment. */
function stateRoute(app: RouteApp) {
  app.get(
    '/audit/state',
    scoped('audit:read', {
      tags,
      summary: "A person's consent per group as it was at a moment",
      description:
        '`basis=recorded` (default): the fold, by the ordering rule, of the events recorded by `at` (what the check would have said ' +
        'then). `basis=occurred`: the fold of the events that occurred by `at`, as known now (late reports included). An identifier ' +
        'names the contact that held it at `at` (recycled numbers follow their moves); `members` lists the contacts folded together ' +
        '(merges). Unknown identifiers answer 404.',
      querystring: AuditStateQuery,
      response: { 200: AuditStateResponse, ...errorResponses(404) },
    }),
    async (request) => {
      const { at, basis, ...sel } = request.query
      // `at` passed the strict date-time format; the same parser gives its instant.
      const when = at ? parseDateTime(at)! : new Date()
      return stateAt(app.audit.readSql, request.principal.workspaceId, { ...oneSelector(sel), at: when, basis: basis ?? 'recorded' })
    },
  )
}

/** `GET|POST /audit/checkpoints`: the signed checkpoints, and signing one now. */
function checkpointRoutes(app: RouteApp) {
  app.get(
    '/audit/checkpoints',
    scoped('audit:read', {
      tags,
      summary: 'Signed checkpoints of this workspace, newest first, with the public key',
      description:
        'Each checkpoint signs (Ed25519) the canonical JSON of {workspace_id, sequence, created_at, tree_size, root_hash} (shown as ' +
        '`signed_message`), where root_hash is the Merkle root over the chain heads of every contact. `enabled: false` when ' +
        'CHECKPOINT_SIGNING_KEY is not configured.',
      querystring: CheckpointsQuery,
      response: { 200: CheckpointsResponse, ...errorResponses() },
    }),
    async (request) => {
      const page = await listCheckpoints(app.audit.readSql, request.principal.workspaceId, {
        before: request.query.cursor !== undefined ? Number(request.query.cursor) : undefined,
        limit: request.query.limit ?? 50,
      })
      const signer = app.audit.signer
      return {
        enabled: !!signer,
        public_key: signer?.publicKeyPem ?? null,
        key_fingerprint: signer?.fingerprint ?? null,
        checkpoints: page.checkpoints.map(withMessage),
        next_cursor: page.next_cursor,
      }
    },
  )

  app.post(
    '/audit/checkpoints',
    scoped('admin', {
      tags,
      summary: 'Sign a checkpoint now (admin)',
      description:
        'Takes a checkpoint of this workspace now instead of waiting for the background job. 201 with the new checkpoint; 200 with ' +
        'the latest one (`created: false`) when no chain changed since it. 409 `checkpoints_disabled` without CHECKPOINT_SIGNING_KEY.',
      response: { 200: CreateCheckpointResponse, 201: CreateCheckpointResponse, ...errorResponses(409) },
    }),
    async (request, reply) => {
      const r = await app.audit.createCheckpoint(request.principal.workspaceId)
      return reply.code(r.created ? 201 : 200).send({ created: r.created, checkpoint: r.checkpoint ? withMessage(r.checkpoint) : null })
    },
  )
}

/** `GET /audit/proof` (one contact, checkable offline) and `POST /audit/verify` (the whole workspace). */
function proofAndVerifyRoutes(app: RouteApp) {
  app.get(
    '/audit/proof',
    scoped('audit:read', {
      tags,
      summary: "A contact's chain, its verification and its inclusion proof in the latest checkpoint",
      description:
        'A self-contained JSON document: save it, then check it offline with `consent-ledger verify-proof <file>` (Node crypto only, ' +
        'no database). It holds the contact\'s chain and the chains of the contacts merged into it, every event with exactly its ' +
        'hashed fields, the server\'s verification, and for each chain the RFC 6962 inclusion proof of its head in the latest signed ' +
        'checkpoint (with the checkpoint, its signature and public key).',
      querystring: AuditProofQuery,
      response: { 200: ProofSchema, ...errorResponses(404) },
    }),
    async (request) => buildProof(app.audit.readSql, request.principal.workspaceId, oneSelector(request.query), app.audit.signer),
  )

  app.post(
    '/audit/verify',
    scoped('audit:read', {
      tags,
      summary: 'Verify every chain and every checkpoint of this workspace',
      description:
        'Re-hashes every event from its fields, checks every link, compares each chain with its contact row and with every checkpoint ' +
        'leaf ever signed for it, and checks every checkpoint\'s signature and Merkle root. Reports the broken chains by contact, with ' +
        'why and where. Compares the projection the pre-send check reads (consent states and platform stops) with a fold of the ' +
        'ledger by the ordering rule and reports each difference (`projection`; repaired by POST /audit/projection/rebuild). Reads only.',
      querystring: VerifyQuery,
      response: { 200: VerifyResponse, ...errorResponses() },
    }),
    async (request) =>
      verifyWorkspace(app.audit.readSql, request.principal.workspaceId, {
        signer: app.audit.signer,
        checkpoints: request.query.checkpoints ?? 'all',
      }),
  )
}

/** `POST /audit/projection/rebuild`: the one repair, of the projection, never of the ledger. */
function projectionRebuildRoute(app: RouteApp) {
  app.post(
    '/audit/projection/rebuild',
    scoped('admin', {
      tags,
      summary: 'Rebuild the projection from the ledger (admin)',
      description:
        'Brings the consent states and platform stops the pre-send check reads back to the fold of the ledger, for this workspace, in ' +
        'one transaction, and answers what it changed: the differences it found (as POST /audit/verify reports them) and the rows ' +
        'written and deleted. Rows that already match are not touched; a second rebuild changes nothing. The ledger itself is never ' +
        'changed (docs/audit.md).',
      response: { 200: ProjectionRebuildResponse, ...errorResponses() },
    }),
    async (request) => {
      const workspaceId = request.principal.workspaceId
      const r = await app.projection.rebuild(workspaceId, 10_000)
      if (r.count > 0) request.log.warn({ workspace_id: workspaceId, differences: r.count, changed: r.changed }, 'projection rebuilt from the ledger')
      return {
        workspace_id: workspaceId,
        rebuilt_at: new Date().toISOString(),
        difference_count: r.count,
        differences: r.differences,
        differences_truncated: r.count > r.differences.length,
        changed: r.changed,
      }
    },
  )
}

const audit: FastifyPluginAsyncTypebox = async (app) => {
  eventRoutes(app)
  stateRoute(app)
  checkpointRoutes(app)
  proofAndVerifyRoutes(app)
  projectionRebuildRoute(app)
}

export default audit
