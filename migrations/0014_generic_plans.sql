-- Hand-written. The hot PL/pgSQL functions plan their statements once per connection (generic
-- plans), not at every call. PL/pgSQL's plan cache makes custom plans for a statement's first five
-- calls and then keeps the generic plan only if it costs no more than the custom ones; with array
-- parameters (unnest of a batch's identities) a custom plan knows the array's length and always
-- looks cheaper, so the owner probe of ledger_prepare was planned again at every call. Measured by
-- replaying a one-object append's statements on one connection (the backend's CPU from /proc):
-- ledger_prepare 500 -> 185 us, the whole transaction ~1,050 -> ~850 us (bench/append-cost.mjs:
-- 935 and 1,425 vs 785 and 815 us); on 75-object requests
-- side by side (bench/ab-check.mjs) PostgreSQL's CPU per request 7.2 -> 6.7 and 8.2 -> 6.9 ms.
-- Their statements are key probes, anti-joins and reads of tiny tables with sequential scans off
-- (0011): a generic plan is the index probe a custom one would choose
-- (test/ledger/plan-stability.test.ts reads the plans).
ALTER FUNCTION ledger_prepare(uuid, uuid[], text[], text[], text[], uuid[], uuid[], uuid[], text[], int) SET plan_cache_mode = force_generic_plan;
--> statement-breakpoint
ALTER FUNCTION webhook_routing(text[]) SET plan_cache_mode = force_generic_plan;
--> statement-breakpoint
ALTER FUNCTION webhook_lock_for_processing(bigint, boolean) SET plan_cache_mode = force_generic_plan;
