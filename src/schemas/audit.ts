/** Auditor API (docs/audit.md): events, export, point-in-time state, checkpoints, proofs, verification. */
import { Type } from '@fastify/type-provider-typebox'
import { SOURCES } from '../ledger/types.js'
import { DateTime, Uuid } from './common.js'

const NO_NUL = '^[^\\u0000]*$'
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()])
const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' })

export const EVENT_TYPES = ['consent', 'contact_merged', 'contact_absorbed', 'identity_moved_in', 'identity_moved_out'] as const

const ContactSelectors = {
  contact_id: Type.Optional(
    Type.String({ format: 'uuid', description: 'A contact: its events and those of every contact merged into it.' }),
  ),
  external_id: Type.Optional(Type.String({ minLength: 1, maxLength: 512, pattern: NO_NUL, description: 'The contact holding this external_id now (and the contacts merged into it).' })),
  phone: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: 'E.164 (or WhatsApp wa_id digits): the contact holding it now (and the contacts merged into it).' })),
  bsuid: Type.Optional(Type.String({ minLength: 1, maxLength: 80, pattern: NO_NUL, description: 'The contact holding this BSUID now (and the contacts merged into it).' })),
}

const EventFilters = {
  ...ContactSelectors,
  subscription_group_id: Type.Optional(Type.String({ format: 'uuid' })),
  source: Type.Optional(Type.Union(SOURCES.map((s) => Type.Literal(s)))),
  type: Type.Optional(Type.Union(EVENT_TYPES.map((s) => Type.Literal(s)), { description: 'Event type (merges and moves have source `merge`).' })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'recorded_at >= from (RFC 3339)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'recorded_at < to (RFC 3339)' })),
}

const FILTERS_DESCRIPTION =
  'Filters combine with AND. Contact selectors name a contact (an identity names the contact that holds it now) and select its events ' +
  'plus those of every contact merged into it; one that names nothing in your workspace answers 404. `from`/`to` apply to `recorded_at` ' +
  '(when the ledger recorded the event), half-open [from, to).'

export const AuditEventsQuery = Type.Object(
  {
    ...EventFilters,
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Opaque `next_cursor` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Page size (default 100, at most 1000)' })),
  },
  { additionalProperties: false, description: FILTERS_DESCRIPTION },
)

export const AuditExportQuery = Type.Object(
  {
    format: Type.Optional(Type.Union([Type.Literal('ndjson'), Type.Literal('csv')], { default: 'ndjson' })),
    ...EventFilters,
  },
  { additionalProperties: false, description: FILTERS_DESCRIPTION },
)

export const AuditEventSchema = Type.Object({
  id: Type.String({ description: 'Ledger id (monotonic; the order of pages). Not covered by the hash.' }),
  event_id: Uuid,
  workspace_id: Uuid,
  contact_id: Uuid,
  type: Type.String({ description: EVENT_TYPES.join(' | ') }),
  subscription_group_id: Nullable(Uuid),
  state: Nullable(Type.String({ description: 'subscribed | unsubscribed (null for merge/move events)' })),
  occurred_at: DateTime,
  recorded_at: DateTime,
  source: Type.String(),
  method: Nullable(Type.String()),
  evidence: Type.Record(Type.String(), Type.Unknown()),
  identity_type: Nullable(Type.String()),
  identity_value: Nullable(Type.String()),
  actor: Type.String(),
  request_id: Nullable(Type.String()),
  idempotency_key: Nullable(Type.String()),
  platform_stop: Nullable(Type.String()),
  prev_hash: Hex64,
  hash: Hex64,
})

export const AuditEventsResponse = Type.Object({
  events: Type.Array(AuditEventSchema),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
})

export const AuditStateQuery = Type.Object(
  {
    ...ContactSelectors,
    at: Type.Optional(Type.String({ format: 'date-time', description: 'The moment asked about (RFC 3339); default now' })),
    basis: Type.Optional(
      Type.Union([Type.Literal('recorded'), Type.Literal('occurred')], {
        default: 'recorded',
        description:
          '`recorded` (default): what the ledger held at `at` (events recorded by then): what the check would have said. ' +
          '`occurred`: what the person had done by `at` (events that occurred by then), as known now.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Exactly one of phone, external_id, bsuid, contact_id.' },
)

export const AuditStateResponse = Type.Object({
  at: DateTime,
  basis: Type.Union([Type.Literal('recorded'), Type.Literal('occurred')]),
  identifier: Type.Union([Type.Object({ type: Type.String(), value: Type.String() }), Type.Null()]),
  identity_known_at_time: Type.Union([Type.Boolean(), Type.Null()], {
    description: 'basis=recorded with an identifier: whether it was attached to a contact at `at` (false: no groups, the check said unknown)',
  }),
  contact_id: Uuid,
  current_contact_id: Uuid,
  members: Type.Array(Uuid, { description: 'Contacts whose events were folded' }),
  groups: Type.Array(
    Type.Object({
      subscription_group_id: Uuid,
      name: Nullable(Type.String()),
      channel: Nullable(Type.String()),
      category: Nullable(Type.String()),
      state: Type.String(),
      occurred_at: DateTime,
      recorded_at: DateTime,
      event_id: Uuid,
      source: Type.String(),
      method: Nullable(Type.String()),
      platform_stop: Nullable(Type.String()),
    }),
    { description: 'Per group, the winning event by the ordering rule; groups with no event are omitted (unknown)' },
  ),
})

export const CheckpointSchema = Type.Object({
  workspace_id: Uuid,
  sequence: Type.Integer(),
  created_at: DateTime,
  tree_size: Type.Integer(),
  root_hash: Hex64,
  signature: Type.String({ description: 'base64 Ed25519 signature of `signed_message`' }),
  public_key: Type.String({ description: 'SPKI PEM' }),
  key_fingerprint: Type.String({ description: 'sha256 hex of the SPKI DER' }),
  ledger_high_water: Type.String({ description: 'Highest ledger id visible when it was taken' }),
  signed_message: Type.String({ description: 'The canonical JSON the signature covers' }),
})

export const CheckpointsQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'Opaque `next_cursor` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
)

export const CheckpointsResponse = Type.Object({
  enabled: Type.Boolean({ description: 'false when CHECKPOINT_SIGNING_KEY is not configured' }),
  public_key: Nullable(Type.String({ description: 'The configured signing key (SPKI PEM)' })),
  key_fingerprint: Nullable(Type.String()),
  checkpoints: Type.Array(CheckpointSchema, { description: 'Newest first' }),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
})

export const CreateCheckpointResponse = Type.Object({
  created: Type.Boolean({ description: 'false when no chain changed since the latest checkpoint (which is returned)' }),
  checkpoint: Type.Union([CheckpointSchema, Type.Null()]),
})

const ChainProblemSchema = Type.Object({
  code: Type.String(),
  detail: Type.String(),
  position: Type.Optional(Type.Integer()),
  event_id: Type.Optional(Type.String()),
  checkpoint_sequence: Type.Optional(Type.Integer()),
})

export const AuditProofQuery = Type.Object(
  { ...ContactSelectors },
  { additionalProperties: false, description: 'Exactly one of phone, external_id, bsuid (the contact holding it now) or contact_id.' },
)

const { id: _id, ...proofEventProps } = AuditEventSchema.properties

export const ProofSchema = Type.Object({
  format: Type.Literal('consent-ledger-proof'),
  version: Type.Literal(1),
  generated_at: DateTime,
  workspace_id: Uuid,
  contact_id: Uuid,
  chains: Type.Array(
    Type.Object({
      contact_id: Uuid,
      merged_into: Nullable(Uuid),
      events: Type.Array(Type.Object(proofEventProps)),
      verification: Type.Object({
        ok: Type.Boolean(),
        length: Type.Integer(),
        head: Hex64,
        broken_at: Type.Union([Type.Integer(), Type.Null()]),
        matches_contact_row: Type.Boolean(),
        problems: Type.Array(ChainProblemSchema),
      }),
      inclusion: Type.Union([
        Type.Object({
          leaf_index: Type.Integer(),
          leaf: Type.Object({ contact_id: Uuid, chain_length: Type.Integer(), head: Hex64 }),
          audit_path: Type.Array(Hex64),
        }),
        Type.Null(),
      ]),
    }),
  ),
  checkpoint: Type.Union([
    Type.Object({
      workspace_id: Uuid,
      sequence: Type.Integer(),
      created_at: DateTime,
      tree_size: Type.Integer(),
      root_hash: Hex64,
      signature: Type.String(),
      public_key: Type.String(),
      key_fingerprint: Type.String(),
    }),
    Type.Null(),
  ]),
  checkpoint_status: Type.Union([
    Type.Literal('included'),
    Type.Literal('partly_included'),
    Type.Literal('not_yet_checkpointed'),
    Type.Literal('no_checkpoint'),
    Type.Literal('checkpoints_disabled'),
    Type.Literal('root_mismatch'),
  ]),
})

export const VerifyQuery = Type.Object(
  {
    checkpoints: Type.Optional(
      Type.Union([Type.Literal('all'), Type.Literal('latest')], {
        default: 'all',
        description: 'Recompute the Merkle root of every checkpoint (default) or of the latest only; signatures are always all checked',
      }),
    ),
  },
  { additionalProperties: false },
)

const ProjectionDifferenceSchema = Type.Object({
  table: Type.Union([Type.Literal('consent_state'), Type.Literal('platform_stops')]),
  kind: Type.Union([Type.Literal('missing'), Type.Literal('extra'), Type.Literal('wrong_winner'), Type.Literal('wrong_state')], {
    description:
      'missing: the ledger says there is a row, the table has none; extra: the table has a row no event accounts for; ' +
      'wrong_winner: the row names another event than the winner by the ordering rule; wrong_state: it names the winner but not its state, time or source',
  }),
  contact_id: Uuid,
  subscription_group_id: Type.Union([Uuid, Type.Null()], { description: 'consent_state rows' }),
  phone_number_id: Type.Union([Type.String(), Type.Null()], { description: 'platform_stops rows' }),
  expected: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], { description: 'The row as the fold of the ledger has it (null: no row)' }),
  found: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], { description: 'The row as the table has it (null: no row)' }),
})

const ProjectionDifferences = {
  difference_count: Type.Integer(),
  differences: Type.Array(ProjectionDifferenceSchema, { description: 'At most 10,000, in (table, contact, group or number) order' }),
  differences_truncated: Type.Boolean(),
}

export const ProjectionRebuildResponse = Type.Object({
  workspace_id: Uuid,
  rebuilt_at: DateTime,
  ...ProjectionDifferences,
  changed: Type.Object({
    consent_state: Type.Object({ written: Type.Integer(), deleted: Type.Integer() }),
    platform_stops: Type.Object({ written: Type.Integer(), deleted: Type.Integer() }),
  }),
})

export const VerifyResponse = Type.Object({
  ok: Type.Boolean(),
  workspace_id: Uuid,
  verified_at: DateTime,
  contacts_checked: Type.Integer(),
  events_checked: Type.Integer(),
  broken_count: Type.Integer(),
  broken: Type.Array(Type.Object({ contact_id: Uuid, problems: Type.Array(ChainProblemSchema) }), { description: 'Contacts whose chain does not verify, with why' }),
  broken_truncated: Type.Boolean(),
  checkpoints: Type.Object({
    enabled: Type.Boolean(),
    key_fingerprint: Nullable(Type.String()),
    checked: Type.Integer(),
    roots_checked: Type.Integer(),
    latest_sequence: Type.Union([Type.Integer(), Type.Null()]),
    invalid: Type.Array(Type.Object({ sequence: Type.Integer(), problems: Type.Array(Type.String()) })),
  }),
  projection: Type.Object(ProjectionDifferences, {
    description: 'consent_state and platform_stops (what the pre-send check reads) compared with a fold of the ledger by the ordering rule',
  }),
})
