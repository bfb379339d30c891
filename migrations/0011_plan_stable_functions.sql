-- Hand-written. The ledger's PL/pgSQL functions probe by key (one identity, one exactly-once key,
-- one contact, one inbox row...) and must do so by index whatever the table sizes were when their
-- plans were made. PL/pgSQL keeps each statement's plan for the life of the connection (a generic
-- plan after five calls); a plan made while a table was nearly empty (a fresh deployment, a new
-- database) is a sequential scan, and it was kept while the table grew, until autovacuum's next
-- ANALYZE invalidated it. Measured in the webhook bench: ledger_dedupe probes of a 200-payload
-- batch took ~800 ms (a full scan per key) and processing fell to ~350 payloads/s for 30-80 s.
-- Inside these functions sequential scans are off, so a plan is an index probe from the first call
-- (test/ledger/plan-stability.test.ts). The statements they run are all key lookups, anti-joins
-- of a statement's new rows against a primary key, or reads of tiny tables, where an index scan
-- is never much worse.
ALTER FUNCTION ledger_prepare(uuid, uuid[], text[], text[], text[], uuid[], uuid[], uuid[], text[], int) SET enable_seqscan = off;
--> statement-breakpoint
ALTER FUNCTION ledger_check_contact_refs() SET enable_seqscan = off;
--> statement-breakpoint
ALTER FUNCTION ledger_check_group_refs() SET enable_seqscan = off;
--> statement-breakpoint
ALTER FUNCTION ledger_check_contact_ref_row() SET enable_seqscan = off;
--> statement-breakpoint
ALTER FUNCTION webhook_routing(text[]) SET enable_seqscan = off;
--> statement-breakpoint
ALTER FUNCTION webhook_lock_for_processing(bigint, boolean) SET enable_seqscan = off;
