/**
 * Drizzle table definitions, one module per family of tables in src/db/schema/. drizzle-kit
 * generates migrations/ from this file (drizzle.config.ts); the append-only triggers and the SQL
 * functions are hand-written migrations (migrations/functions/ holds their current definitions).
 *
 * Every table carries `workspace_id` and every primary/unique key starts with it, so the schema can
 * be distributed by tenant (Citus) without changing queries. The ledger has no unique key that lacks
 * `recorded_at`, so it can be range-partitioned by month: dedupe keys live in `ledger_dedupe` and
 * idempotency keys in `idempotency_keys` (docs/architecture.md).
 */
export * from './schema/workspaces.js'
export * from './schema/contacts.js'
export * from './schema/ledger.js'
export * from './schema/whatsapp.js'
export * from './schema/checkpoints.js'
export * from './schema/imports.js'
